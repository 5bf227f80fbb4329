"""The metric code against figures computed by hand."""

import numpy as np
import pytest

from lsms_core.evaluate import equivalent_diameter_mm, is_comparative, keep_words, size_group
from lsms_core.metrics import MetricAccumulator, score_pair, summarize


def masks(*cells, shape=(4, 4)):
    m = np.zeros(shape, dtype=bool)
    for r, c in cells:
        m[r, c] = True
    return m


# A: |P|=4, |G|=4, overlap 2 -> IoU 2/6, Dice 4/8.  B: both empty -> 1, 1 (our convention).
# C: nothing predicted, |G|=3 -> 0, 0.  D: exact, 5 pixels -> 1, 1.
A = (masks((0, 0), (0, 1), (1, 0), (1, 1)), masks((0, 0), (0, 1), (2, 0), (2, 1)))
B = (masks(), masks())
C = (masks(), masks((3, 1), (3, 2), (3, 3)))
D = (masks((1, 1), (1, 2), (2, 1), (2, 2), (3, 3)),) * 2


def test_pair_scores_by_hand():
    a = score_pair(*A)
    assert (a.intersection, a.union, a.pred_area, a.gt_area) == (2, 6, 4, 4)
    assert a.iou == pytest.approx(1 / 3) and a.dice == pytest.approx(0.5)
    assert score_pair(*B).iou == 1.0 and score_pair(*B).dice == 1.0
    assert score_pair(*C).iou == 0.0 and score_pair(*C).dice == 0.0
    with pytest.raises(ValueError, match="shape"):
        score_pair(np.zeros((2, 2)), np.zeros((2, 3)))


def test_summary_by_hand():
    s = summarize([score_pair(*p) for p in (A, B, C, D)])
    assert s["samples"] == 4
    assert s["mIoU"] == pytest.approx((1 / 3 + 1 + 0 + 1) / 4)
    assert s["mDice"] == pytest.approx((0.5 + 1 + 0 + 1) / 4)
    # oIoU: (2 + 0 + 0 + 5) / (6 + 0 + 3 + 5)
    assert s["oIoU"] == pytest.approx(7 / 14)
    assert s["prec@0.5"] == pytest.approx(0.5)
    assert s["prec@0.9"] == pytest.approx(0.5)
    # IoU exactly at a threshold counts (2/3 >= 0.6, not >= 0.7)
    e = score_pair(masks((0, 0), (0, 1)), masks((0, 0), (0, 1), (0, 2)))
    t = summarize([e])
    assert t["prec@0.6"] == 1.0 and t["prec@0.7"] == 0.0
    exact = summarize([score_pair(masks(*[(0, i) for i in range(3)] + [(1, i) for i in range(4)]),
                                  masks(*[(0, i) for i in range(4)] + [(1, i) for i in range(4)]))])
    assert exact["mIoU"] == pytest.approx(7 / 8) and exact["prec@0.8"] == 1.0


def test_groups_by_hand():
    acc = MetricAccumulator()
    acc.add(*A, groups={"lesions_on_slice": "2+"}, sample_id="a")
    acc.add(*B, groups={"lesions_on_slice": "1"}, sample_id="b")
    acc.add(*C, groups={"lesions_on_slice": "2+"}, sample_id="c")
    out = acc.summary()
    two = out["groups"]["lesions_on_slice"]["2+"]
    assert two["samples"] == 2
    assert two["mDice"] == pytest.approx(0.25)
    assert two["oIoU"] == pytest.approx(2 / 9)
    assert out["groups"]["lesions_on_slice"]["1"]["mDice"] == 1.0
    assert [sid for sid, _ in acc.worst(2)] == ["c", "a"]
    assert out["empty_pair_score"] == 1.0


def test_partial_text_protocol():
    words = "the smaller hypodense lesion in the right lobe"
    half = keep_words(words, 0.5, "case1#0")
    assert len(half.split()) == 4
    # kept words appear in their original order
    it = iter(words.split())
    assert all(w in it for w in half.split())
    assert keep_words(words, 0.5, "case1#0") == half  # same key, same words
    assert len(keep_words(words, 0.25, "x").split()) == 2
    assert keep_words(words, 1.0, "x") == words
    assert keep_words(words, 0.0, "x") == ""
    assert keep_words("lesion", 0.25, "x") == "lesion"  # at least one word


def test_groups_helpers():
    assert is_comparative("the smaller nodule") and is_comparative("the lesion larger than the other")
    assert not is_comparative("the hypodense lesion in segment 7")
    assert size_group(9.9) == "<10 mm" and size_group(10) == "10-20 mm" and size_group(45) == ">=40 mm"
    disc = np.zeros((100, 100), bool)
    yy, xx = np.mgrid[:100, :100]
    disc[(yy - 50) ** 2 + (xx - 50) ** 2 <= 20 ** 2] = True
    assert equivalent_diameter_mm(disc, (0.5, 0.5)) == pytest.approx(20.0, rel=0.02)


def test_partial_text_uses_the_tagged_expressions_when_a_line_has_them():
    from lsms_core.data.format import Sample
    from lsms_core.evaluate import select_expressions

    tagged = Sample(id="a", case_id="c", split="test", image="images/c/1.npy", mask="masks/c/1.png",
                    expressions=["the 2 cm hypodense lesion in segment VI", "the lesion in segment VI",
                                 "the lesion"], spacing=(1.0, 1.0),
                    extra={"expression_fractions": [1.0, 0.5, 0.25]})
    assert [t for _, t, _ in select_expressions(tagged, None)] == tagged.expressions
    assert select_expressions(tagged, 0.5) == [(1, "the lesion in segment VI", 0.5)]
    assert select_expressions(tagged, 0.25) == [(2, "the lesion", 0.25)]
    assert select_expressions(tagged, 0.0) == [(0, "", 0.0)]
    # no expression tagged 0.75: words are dropped from the full one
    (i, text, tag), = select_expressions(tagged, 0.75)
    assert i == 0 and len(text.split()) == 6 and tag == 0.75
    plain = Sample(id="b", case_id="c", split="test", image="images/c/1.npy", mask="masks/c/1.png",
                   expressions=["one two three four", "five six seven eight"], spacing=(1.0, 1.0))
    assert [len(t.split()) for _, t, _ in select_expressions(plain, 0.5)] == [2, 2]
