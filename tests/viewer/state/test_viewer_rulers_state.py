"""Rulers without Qt: length is the world distance, stored rulers that do not fit the study are skipped
with a note, another study starts without rulers."""

from __future__ import annotations

import numpy as np

from lsms_core.volume import Volume
from lsms_viewer.state.document import Document
from lsms_viewer.state.rulers import Rulers


def _volume(direction=np.eye(3)) -> Volume:
    return Volume(np.zeros((10, 20, 30), np.int16), (0.5, 0.7, 3.0), (1.0, 2.0, 3.0), direction)


def test_length_is_the_world_distance_between_the_ends():
    rotation = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    volume = _volume(rotation)
    rulers = Rulers(Document(volume))
    ruler = rulers.add("coronal", 4, (2.5, 4.5, 1.5), (12.5, 4.5, 7.5))
    world = volume.index_to_world(np.array(ruler.end) - 0.5) - volume.index_to_world(np.array(ruler.start) - 0.5)
    assert np.isclose(ruler.length_mm(volume), np.linalg.norm(world))
    assert np.isclose(ruler.length_mm(volume), np.hypot(10 * 0.5, 6 * 3.0))


def test_stored_rulers_are_checked_against_the_study_and_cleared_with_it():
    document = Document(_volume())
    rulers = Rulers(document)
    notes = rulers.load([
        {"id": 4, "plane": "axial", "index": 2, "start": [1, 1, 2.5], "end": [5, 9, 2.5]},
        {"id": 5, "plane": "axial", "index": 2, "start": [1, 1, 2.5], "end": [500, 9, 2.5]},  # outside
        {"id": 6, "plane": "oblique", "index": 0, "start": [1, 1, 1], "end": [2, 2, 1]},
        {"plane": "axial"},
        "junk",
    ])
    assert [r.id for r in rulers] == [4] and len(notes) == 4
    assert rulers.add("sagittal", 3, (3.5, 1, 1), (3.5, 5, 5)).id == 5  # ids continue after the stored ones
    assert [r.id for r in rulers.on("axial", 2)] == [4] and rulers.on("axial", 3) == []
    rulers.remove(4)
    assert [r.id for r in rulers] == [5]
    document.set_volume(_volume())
    assert len(rulers) == 0
