"""The shared measurements of a Document's labels: one density rule, and a cache that follows the labels."""

from __future__ import annotations

import numpy as np

from lsms_core.measure import array_spacing, measure_volume
from lsms_viewer.state.measurements import Measurements


def test_volume_part_keeps_other_labels_out_of_the_ring_and_is_cached(document, volume):
    measurements = Measurements(document)
    dark = np.abs(volume.array - 10) < 15
    dark[:, :, volume.shape[2] // 2:] = False
    ring_blocker = np.zeros(volume.shape, bool)
    ring_blocker[:, 20:44, 5:30] = True
    ring_blocker &= ~dark
    other = document.add_label(ring_blocker, name="next to it")
    label = document.add_label(dark, name="dark")
    m3, density = measurements.volume_part(label)
    expected = measure_volume(volume.array, dark, array_spacing(volume.spacing), exclude=other.mask)[1]
    assert density == expected and density.label == "hypo"
    assert measurements.volume_part(label)[0] is m3  # served from the cache
    document.write_region(label.id, (slice(0, 1), slice(0, 1), slice(0, 1)), np.ones((1, 1, 1), bool))
    assert measurements.volume_part(label)[0] is not m3  # a mask edit measures again
    lesion = measurements.lesion(label)
    assert lesion.lesion_density == measurements.volume_part(label)[1]


def test_long_axes_of_a_deleted_label_do_not_serve_a_new_label_with_its_id(document, volume):
    measurements = Measurements(document)
    old = np.zeros(volume.shape, bool)
    old[2:10, 30:34, 30:34] = True
    old[8, 10:50, 10:70] = True
    first = document.add_label(old)
    assert measurements.lesion(first).slice_index == 8
    document.remove_label(first.id)
    new = np.zeros(volume.shape, bool)
    new[2:10, 30:34, 30:34] = True
    new[3, 20:44, 20:60] = True
    second = document.add_label(new)
    assert second.id == first.id and measurements.lesion(second).slice_index == 3
