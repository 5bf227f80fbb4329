"""Viewer test fixtures without Qt: a synthetic study, a phantom volume and its Document, one real
(random-weight) engine. Qt fixtures (settings isolation, whole viewers) are in qt/conftest.py."""

from __future__ import annotations

import numpy as np
import pytest
from viewer_helpers import phantom_volume

from lsms_viewer.demo import synthetic_abdomen
from lsms_viewer.state.document import Document


@pytest.fixture(scope="session")
def study():
    """A small abdomen phantom (and its lesion masks) that the model can run on quickly."""
    return synthetic_abdomen(shape=(12, 96, 112), spacing=(3.0, 2.5, 5.0), seed=1)


@pytest.fixture
def volume():
    return phantom_volume()


@pytest.fixture
def document(volume):
    return Document(volume)


@pytest.fixture(scope="session")
def engine(tmp_path_factory):
    """A real Segmenter on a random checkpoint (input 64 px); loaded once for the whole session.

    Random weights give probabilities near 0.5, so the threshold is set to the median probability of one
    real run: masks are then about half of each slice, never all or nothing.
    """
    from lsms_core.checkpoint import create_random_checkpoint
    from lsms_viewer.inference import EngineHost

    folder = create_random_checkpoint(tmp_path_factory.mktemp("ckpt") / "random", input_size=64, seed=0)
    # The refiner is off here (LiteMedSAM costs seconds per slice); the candidates tests switch it on.
    host = EngineHost(folder, device="cpu", threads=1, refine="off")
    volume, _ = synthetic_abdomen(shape=(2, 96, 112), spacing=(3.0, 2.5, 5.0), seed=1)
    probs = host.get().predict(volume.array[0], "the low-density nodule in the right lobe").probs
    # The probabilities come back as float16: the threshold sits halfway to the next float16 value, so no
    # stored probability equals it (masks are thresholded on float32 before that rounding).
    median = np.float16(np.median(probs))
    host.threshold = float((np.float32(median) + np.float32(np.nextafter(median, np.float16(1)))) / 2)
    return host
