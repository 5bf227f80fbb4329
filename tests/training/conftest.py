"""A tiny real dataset (written with DatasetWriter) and one loaded text encoder shared by the tests."""

import numpy as np
import pytest

from lsms_core.data.format import DatasetWriter, Sample

SIZE = 64


def draw_slice(rng, size=SIZE):
    """A body-like ellipse of soft tissue with a dark lesion on the image's left and a bright one on its right."""
    yy, xx = np.mgrid[:size, :size]
    image = np.full((size, size), -1000.0, dtype=np.float32)
    body = ((yy - size / 2) / (size * 0.45)) ** 2 + ((xx - size / 2) / (size * 0.47)) ** 2 <= 1
    image[body] = 60.0
    image += rng.normal(0, 8, image.shape).astype(np.float32)
    lesions = {}
    for name, hu, cx in (("dark", -30.0, size * 0.3), ("bright", 180.0, size * 0.7)):
        cy = size * rng.uniform(0.35, 0.65)
        r = size * rng.uniform(0.08, 0.13)
        m = (yy - cy) ** 2 + (xx - (cx + rng.uniform(-3, 3))) ** 2 <= r * r
        image[m] = hu + rng.normal(0, 8, int(m.sum()))
        lesions[name] = m
    return image.astype(np.int16), lesions


EXPRESSIONS = {
    "dark": ["the dark hypodense lesion on the left", "the low-density nodule"],
    "bright": ["the bright hyperdense lesion on the right", "the enhancing nodule"],
}


def write_tiny_dataset(root, cases=8, slices=2, seed=0):
    rng = np.random.default_rng(seed)
    splits = ["train"] * (cases - 2) + ["val", "test"]
    with DatasetWriter(root, name="tiny", description="test data: two discs per slice") as w:
        for c in range(cases):
            cid = w.new_case_id("case")
            for s in range(slices):
                image, lesions = draw_slice(rng)
                img = w.write_image(cid, f"{s:03d}", image)
                for name, mask in lesions.items():
                    msk = w.write_mask(cid, f"{s:03d}_{name}", mask)
                    w.add(Sample(id=f"{cid}_s{s:03d}_{name}", case_id=cid, split=splits[c], image=img, mask=msk,
                                 expressions=list(EXPRESSIONS[name]), spacing=(0.8, 0.8), slice_index=s,
                                 lesion_id=name))
    return root


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny") / "data", cases=6)


@pytest.fixture(scope="session")
def text_encoder():
    from lsms_core.text import TextEncoder

    return TextEncoder.load(None, token_length=16)
