"""The Box tool and Refine label: LiteMedSAM draws the lesion inside a dragged rectangle into a label, one
undo step each (the shipped refiner on the demo case, real mouse events in a real window)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from qt_helpers import drag

from lsms_core.resources import resources_dir
from lsms_viewer.app import build_viewer
from lsms_viewer.inference import EngineHost, refiner_installed

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not refiner_installed(), reason="the LiteMedSAM refiner's weights are not installed")]


@pytest.fixture(scope="module")
def demo_case():
    from lsms_core.volume import load_mask, load_volume

    folder = resources_dir() / "demo"
    recipe = json.loads((folder / "demo.json").read_text())
    volume = load_volume(folder / recipe["ct"])
    return volume, load_mask(folder / recipe["lesion_mask"], volume) > 0, recipe["slice"]


@pytest.fixture
def box_viewer(qtbot, demo_case):
    volume, _, k = demo_case
    viewer = build_viewer(engine=EngineHost("demo", device="cpu", threads=2, refine="off"))
    qtbot.addWidget(viewer.window)
    viewer.window.resize(1200, 800)
    viewer.window.show()
    qtbot.waitExposed(viewer.window)
    viewer.opening.set_volume(volume)
    viewer.window.slice_view.set_slice(k)
    return viewer


def _dice(a, b) -> float:
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def test_a_dragged_box_becomes_a_label_drawn_by_the_refiner(box_viewer, qtbot, demo_case):
    viewer = box_viewer
    _, reference, k = demo_case
    rows, cols = np.nonzero(reference[k])
    viewer.editing.tool_actions["box"].trigger()
    assert viewer.window.slice_view.tool is viewer.refining.tool
    with qtbot.waitSignal(viewer.document.events.mask_changed, timeout=120000):
        drag(viewer.window, [(rows.min() - 3, cols.min() - 3), (rows.mean(), cols.mean()),
                             (rows.max() + 3, cols.max() + 3)])
    viewer.refining.wait()
    labels = viewer.document.labels
    assert len(labels) == 1  # no active label: a new one
    mask = labels[0].mask
    assert not mask[np.arange(mask.shape[0]) != k].any()  # that slice only
    # LiteMedSAM draws this synthetic metastasis a little small (Dice 0.76 from its exact box, measured);
    # the real-CT bar (0.85 and more over 3D-IRCADb's tumour slices) is the refiner's own test.
    assert _dice(mask[k], reference[k]) >= 0.7
    viewer.history.undo()  # one step: the label and its drawing go together
    assert not viewer.document.labels


def test_refine_label_redraws_a_coarse_label_on_the_shown_slice(box_viewer, qtbot, demo_case):
    viewer = box_viewer
    volume, reference, k = demo_case
    from scipy import ndimage

    coarse = np.zeros(volume.shape, bool)
    coarse[k] = ndimage.binary_dilation(reference[k], iterations=3)  # a blocky, too-large outline
    label = viewer.document.add_label(coarse, expression="the larger hypodense lesion in the right lobe")
    before = _dice(coarse[k], reference[k])
    with qtbot.waitSignal(viewer.document.events.mask_changed, timeout=120000):
        viewer.refining.refine_label_action.trigger()
    viewer.refining.wait()
    after = _dice(label.mask[k], reference[k])
    assert after > before and after >= 0.7, (before, after)
    viewer.history.undo()
    assert np.array_equal(label.mask, coarse)
