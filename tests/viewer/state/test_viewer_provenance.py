"""What made a label's mask, said honestly in every file (issue 15 items 7 and 8, no Qt): a model run, a
run edited by hand, or the hand alone; names without a display ellipsis; one rounding rule for a
diameter; ``expression_fractions`` on every exported manifest line."""

from __future__ import annotations

import json

import numpy as np

from lsms_core.volume import read_label_sidecar
from lsms_viewer.state.annotation import (
    Annotation,
    LesionAttributes,
    export_annotations,
    form_expressions,
    format_diameter,
)
from lsms_viewer.state.document import Document, RunInfo, auto_name
from lsms_viewer.state.export import export_multilabel, file_name
from lsms_viewer.state.maskbits import PackedMask
from lsms_viewer.state.provenance import DRAWN_BY_HAND, EDITED_AFTER_RUN, MODEL_RUN, origin


def _disc(volume, k=5):
    mask = np.zeros(volume.shape, bool)
    mask[k, 20:30, 15:25] = True
    return mask


def _run(volume, mask, expression="the dark lesion"):
    return RunInfo(expression, 2.5, "cpu", "lsms-t-demo", True, (0, volume.shape[0]), mask=PackedMask.of(mask))


def test_origin_tells_model_edited_and_hand_drawn_apart(volume):
    doc = Document(volume)
    model = doc.add_label(_disc(volume), expression="the dark lesion", run=_run(volume, _disc(volume)))
    assert origin(model) == MODEL_RUN
    doc.write_region(model.id, (slice(5, 6), slice(0, 2), slice(0, 2)), np.ones((1, 2, 2), bool))
    assert origin(model) == EDITED_AFTER_RUN
    hand = doc.add_label(_disc(volume))
    assert origin(hand) == DRAWN_BY_HAND
    # The model ran and found nothing; everything in the mask was drawn: that is hand-drawn work.
    empty_run = doc.add_label(_disc(volume), expression="the cyst",
                              run=_run(volume, np.zeros(volume.shape, bool), "the cyst"))
    assert origin(empty_run) == DRAWN_BY_HAND


def test_exports_carry_model_fields_only_when_the_model_made_the_mask(tmp_path, volume):
    doc = Document(volume)
    drawn = doc.add_label(_disc(volume), expression="the cyst",
                          run=_run(volume, np.zeros(volume.shape, bool), "the cyst"))
    ann = Annotation(LesionAttributes(segment="VI"), ["the lesion in segment VI of the right lobe"], 5, "ab",
                     "train", True)
    doc.update_label(drawn.id, meta={"annotation": ann.to_json()})
    export_multilabel(doc, tmp_path / "labels.nii.gz")
    (info,) = read_label_sidecar(tmp_path / "labels.nii.gz")
    assert info.extra == {"origin": "drawn by hand"}  # no checkpoint, run time or device
    export_annotations(tmp_path / "set", volume, doc.labels, window=(400, 40))
    line = json.loads((tmp_path / "set" / "manifest.jsonl").read_text().splitlines()[0])
    prov = line["provenance"]
    assert prov["origin"] == "drawn by hand" and prov["checkpoint"] is None and prov["model_expression"] is None
    assert "model_mask" not in prov and not list((tmp_path / "set").rglob("*_model.png"))
    assert line["expression_fractions"] == [1.0]


def test_a_model_mask_is_written_only_on_slices_where_the_model_found_the_lesion(tmp_path, volume):
    doc = Document(volume)
    label = doc.add_label(_disc(volume, 5), expression="the dark lesion", run=_run(volume, _disc(volume, 5)))
    doc.write_region(label.id, (slice(6, 7), slice(20, 30), slice(15, 25)), np.ones((1, 10, 10), bool))
    ann = Annotation(LesionAttributes(), ["the dark lesion"], 5, "ab", "train", True)
    doc.update_label(label.id, meta={"annotation": ann.to_json()})
    export_annotations(tmp_path / "set", volume, doc.labels, slices="all")
    lines = [json.loads(x) for x in (tmp_path / "set" / "manifest.jsonl").read_text().splitlines()]
    by_slice = {x["slice_index"]: x["provenance"] for x in lines}
    assert by_slice[5]["origin"] == "model run" and "model_mask" in by_slice[5]
    assert by_slice[5]["label_origin"] == "edited after a run"
    assert by_slice[6]["origin"] == "drawn by hand" and "model_mask" not in by_slice[6]
    assert by_slice[6]["checkpoint"] is None
    assert len(list((tmp_path / "set").rglob("*_model.png"))) == 1


def test_names_never_carry_a_display_ellipsis(tmp_path, volume):
    words = "the hypodense lesion of about 2 cm in segment VII of the right lobe near the dome"
    doc = Document(volume)
    label = doc.add_label(_disc(volume), expression=words)
    assert label.name == words and "…" not in label.name
    assert "…" not in auto_name("word " * 100) and len(auto_name("word " * 100)) <= 160
    # A session saved by an older version named it "six words…": files get the automatic name instead.
    doc.update_label(label.id, name="the hypodense lesion of about 2…")
    assert file_name(label) == words
    export_multilabel(doc, tmp_path / "labels.nii.gz")
    (info,) = read_label_sidecar(tmp_path / "labels.nii.gz")
    assert info.name == words


def test_one_rounding_rule_for_a_diameter():
    # 62.54 mm is 62.5 mm to 0.1 mm, and 62.5 mm is 6.3 cm (halves up) in the form and every expression.
    assert format_diameter(62.54) == "6.3 cm" and format_diameter(62.5) == "6.3 cm"
    assert format_diameter(62.44) == "6.2 cm" and format_diameter(8.5) == "9 mm"
    full, half, quarter = form_expressions(LesionAttributes(segment="VII", diameter_mm=62.5, density="hypodense"))
    assert "about 6.3 cm" in full


def test_annotation_keeps_fractions_by_row():
    ann = Annotation(expressions=["a", "b"], fractions=[1.0, 0.25])
    assert Annotation.from_json(ann.to_json()).fractions_for(["a", "b"]) == [1.0, 0.25]
    assert Annotation(expressions=["a", "b", "c"]).to_json()["expression_fractions"] == [1.0, 0.5, 0.25]
