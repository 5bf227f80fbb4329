"""Expressions from lesion facts: true of the target, unambiguous on the slice, within 32 tokens."""

import numpy as np
import pytest

from lsms_core.data.expressions import MAX_TOKENS, _fits, available, compose_expressions, token_count
from lsms_core.data.facts import LesionFacts, slice_facts


def lesion(lid, long_mm, row_mm=50.0, col_mm=50.0, **kw):
    base = dict(density="hypo", lobe="right", segment="VII", shape="round", boundary="clear")
    base.update(kw)
    return LesionFacts(lid, long_mm, 0.8 * long_mm, long_mm**2, (row_mm, col_mm), (row_mm, col_mm), **base)


def test_single_lesion_gets_full_and_partial_expressions():
    t = lesion("l1", 23, lesion_type="cyst", enhancement="without enhancement")
    out = compose_expressions(t, [t], np.random.default_rng(0))
    assert [f for _, f in out] == [1.0, 0.5, 0.25]
    full = out[0][0]
    assert "VII" in full or "S7" in full or "right posterior" in full
    assert "23 mm" in full or "2.3 cm" in full
    assert all(token_count(e) <= MAX_TOKENS for e, _ in out)


def test_two_lesions_alike_but_size_get_a_size_comparative():
    big, small = lesion("l1", 30), lesion("l2", 12)
    rng = np.random.default_rng(1)
    for _ in range(20):
        for target, word in ((big, "larg"), (small, "small")):
            for text, frac in compose_expressions(target, [big, small], rng):
                mentions_size = "mm" in text or " cm" in text
                assert word in text or mentions_size, (text, frac)


def test_same_size_lesions_are_told_apart_by_position_or_attribute():
    a = lesion("l1", 20, row_mm=30, col_mm=40)
    b = lesion("l2", 20, row_mm=80, col_mm=42)
    out = compose_expressions(a, [a, b], np.random.default_rng(2))
    assert out and all("anterior" in t for t, _ in out)
    b2 = lesion("l2", 20, row_mm=31, col_mm=41, density="hyper")
    out = compose_expressions(a, [a, b2], np.random.default_rng(3))
    assert out and all(any(w in t for w in ("hypo", "low-density")) for t, _ in out)


def test_indistinguishable_lesions_get_no_expression():
    a, b = lesion("l1", 20, row_mm=30, col_mm=40), lesion("l2", 20, row_mm=32, col_mm=43)
    assert compose_expressions(a, [a, b], np.random.default_rng(4)) == []


def test_patient_side_words_follow_columns():
    # columns run patient right -> left: the smaller column is the patient's right
    a = lesion("l1", 20, row_mm=50, col_mm=20, segment="VI", lobe="right")
    b = lesion("l2", 20, row_mm=50, col_mm=80, segment="VI", lobe="right")
    texts = [t for t, _ in compose_expressions(a, [a, b], np.random.default_rng(5))]
    assert texts and all("right-sided" in t for t in texts)


def test_fits_respects_size_tolerance():
    t = lesion("l1", 20)
    assert _fits(lesion("l2", 22), t, {"size"}) and not _fits(lesion("l2", 30), t, {"size"})
    assert available(t)[:3] == ["location", "size", "density"]


def test_slice_facts_measure_a_painted_lesion():
    img = np.full((100, 100), -1000.0, np.float32)
    img[5:95, 5:96] = 45  # the body, midline at column 50
    liver = np.zeros((100, 100), bool)
    liver[10:90, 8:62] = True
    img[liver] = 110
    les = np.zeros((100, 100), bool)
    yy, xx = np.mgrid[:100, :100]
    les[(yy - 50) ** 2 + (xx - 22) ** 2 <= 10**2] = True  # 22 mm to the patient's right
    img[les] = 40
    (f,) = slice_facts(img, {"l1": les}, (0.8, 0.8), liver=liver)
    assert f.density == "hypo" and f.density_diff_hu == pytest.approx(-70)
    assert f.long_mm == pytest.approx(21 * 0.8, abs=1.0) and f.shape == "round"
    assert f.lobe == "right" and f.segment_estimated and f.boundary == "clear"
