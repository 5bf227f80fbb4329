"""The label overlay's index image and colour table (no Qt)."""

from __future__ import annotations

import numpy as np
import pytest

from lsms_viewer.display.overlay import EDGE_BIT, compose_slice, edge_of, lookup_table
from lsms_viewer.state.document import Label


def _label(label_id: int, mask: np.ndarray, **kwargs) -> Label:
    return Label(id=label_id, name=f"L{label_id}", expression="", color=kwargs.pop("color", (10, 20, 30)),
                 mask=mask, **kwargs)


def test_edge_is_the_inner_contour():
    mask = np.zeros((7, 7), bool)
    mask[1:6, 1:6] = True
    edge = edge_of(mask)
    expected = mask.copy()
    expected[2:5, 2:5] = False
    assert np.array_equal(edge, expected)
    full = np.ones((3, 3), bool)
    assert np.array_equal(edge_of(full), ~np.pad(np.ones((1, 1), bool), 1))  # the image border is an edge


def test_compose_codes_interior_and_edge_and_returns_the_drawn_box():
    masks = np.zeros((2, 20, 30), bool)
    masks[1, 4:9, 5:12] = True
    out = np.full((20, 30), 99, np.uint8)
    rows, cols = compose_slice([_label(3, masks)], 1, out)
    assert (rows, cols) == (slice(4, 9), slice(5, 12))
    assert np.array_equal(out > 0, masks[1])
    assert np.array_equal(out == (3 | EDGE_BIT), edge_of(masks[1]))
    assert out[6, 8] == 3
    assert compose_slice([_label(3, masks)], 0, out) is None and not out.any()  # cleared, nothing to draw


def test_later_labels_draw_over_earlier_ones_and_hidden_ones_are_skipped():
    a = np.zeros((1, 10, 10), bool)
    a[0, 2:8, 2:8] = True
    b = np.zeros((1, 10, 10), bool)
    b[0, 5:10, 5:10] = True
    out = np.zeros((10, 10), np.uint8)
    box = compose_slice([_label(1, a), _label(2, b)], 0, out)
    assert box == (slice(2, 10), slice(2, 10))
    assert out[6, 6] & 0x7F == 2 and out[3, 3] == 1
    compose_slice([_label(1, a), _label(2, b, visible=False)], 0, out)
    assert np.array_equal(out > 0, a[0])


def test_a_label_cut_by_the_image_border_has_its_edge_there():
    mask = np.zeros((1, 6, 6), bool)
    mask[0, :3, :3] = True  # runs into the top-left corner
    out = np.zeros((6, 6), np.uint8)
    compose_slice([_label(1, mask)], 0, out)
    assert out[0, 1] == 1 | EDGE_BIT and out[1, 0] == 1 | EDGE_BIT and out[1, 1] == 1


def test_lookup_table_fill_and_outline():
    label = _label(5, np.zeros((1, 2, 2), bool), color=(200, 100, 50), opacity=0.4)
    fill = lookup_table([label], "fill")
    assert fill.shape == (256, 4) and fill.dtype == np.uint8
    assert tuple(fill[5]) == (200, 100, 50, round(255 * 0.4))
    assert tuple(fill[5 | EDGE_BIT]) == (200, 100, 50, round(255 * 0.75))  # border a little stronger
    outline = lookup_table([label], "outline")
    assert outline[5, 3] == 0 and outline[5 | EDGE_BIT, 3] == round(255 * 0.85)
    assert not lookup_table([], "fill").any()  # code 0 (no label) is transparent
    with pytest.raises(ValueError, match="overlay mode"):
        lookup_table([label], "tint")
