"""The demo case and weights are found from a checkout and from a wheel's install, and a wheel ships them all."""

from __future__ import annotations

import glob
import sys
from pathlib import Path

import pytest

from lsms_core import resources

ROOT = Path(__file__).resolve().parent.parent


def test_every_shipped_resource_is_in_the_wheel_data_files():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+; the project also supports 3.10
    data_files = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    packed = {}
    for target, patterns in data_files.items():
        for pattern in patterns:
            for name in glob.glob(str(ROOT / pattern)):
                packed[Path(name).relative_to(ROOT).as_posix()] = f"{target}/{Path(name).name}"
    shipped = {p.relative_to(ROOT).as_posix() for p in (ROOT / "resources").rglob("*") if p.is_file()}
    assert shipped and shipped == set(packed)
    # Installed under <prefix>/share/lsms-viewer/resources with the same layout as the checkout.
    for source, target in packed.items():
        assert target == (resources.INSTALLED.as_posix() + source.removeprefix("resources"))


def test_resources_come_from_the_prefix_when_the_package_is_installed_alone(tmp_path, monkeypatch):
    site = tmp_path / "site-packages" / "lsms_core"
    site.mkdir(parents=True)
    monkeypatch.delenv("LSMS_RESOURCES", raising=False)
    monkeypatch.setattr(resources, "__file__", str(site / "resources.py"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))
    monkeypatch.setattr(sys, "base_prefix", str(tmp_path / "base"))
    assert resources.resources_dir() == tmp_path / "site-packages" / "resources"  # missing: names the checkout's

    installed = tmp_path / "venv" / resources.INSTALLED
    (installed / "models").mkdir(parents=True)
    assert resources.resources_dir() == installed
    assert resources.models_dir() == installed / "models"

    checkout = tmp_path / "site-packages" / "resources"
    checkout.mkdir()
    assert resources.resources_dir() == checkout  # a source tree next to the package wins

    monkeypatch.setenv("LSMS_RESOURCES", str(tmp_path / "mine"))
    assert resources.resources_dir() == tmp_path / "mine"


def test_a_checkout_uses_its_own_resources(monkeypatch):
    monkeypatch.delenv("LSMS_RESOURCES", raising=False)
    assert resources.resources_dir() == ROOT / "resources"
    assert (resources.models_dir() / "lsms-e0-demo" / "config.json").is_file()
