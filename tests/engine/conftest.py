"""Shared, real fixtures for the network and engine tests: one text encoder, one random checkpoint."""

import pytest


@pytest.fixture(scope="session")
def text_encoder():
    from lsms_core.text import TextEncoder

    return TextEncoder.load(None, token_length=32)


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory):
    from lsms_core.checkpoint import create_random_checkpoint

    return create_random_checkpoint(tmp_path_factory.mktemp("ckpt") / "lsms-t-random", input_size=64, seed=3)


@pytest.fixture(scope="session")
def segmenter(random_checkpoint):
    from lsms_core.engine import Segmenter

    return Segmenter.from_checkpoint(random_checkpoint, device="cpu")
