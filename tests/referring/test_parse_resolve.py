"""The words against the candidates: parsing with the generator's vocabulary, and the resolver alone."""

import numpy as np
import pytest

from lsms_core.data.expressions import compose_expressions
from lsms_core.data.synth import synth_case
from lsms_core.data.synth_dataset import case_samples
from lsms_core.evaluate import is_comparative
from lsms_core.referring.candidates import Candidate, slice_candidates
from lsms_core.referring.parse import parse_expression
from lsms_core.referring.resolve import resolve


def generated_slices(n_cases=12, seed=9000, min_lesions=2):
    """(case, slice index, samples of that slice) for slices with at least ``min_lesions`` lesions."""
    for ci in range(n_cases):
        case = synth_case(seed + ci, size=192, n_slices=10)
        by_slice = {}
        for s in case_samples(case, np.random.default_rng(ci)):
            by_slice.setdefault(s["slice"], []).append(s)
        for k, samples in by_slice.items():
            if len(samples) >= min_lesions:
                yield case, k, samples


def test_every_generated_phrase_is_read_back():
    """Whatever the generator writes, the parser reads: no unknown word, and the stated facts agree."""
    checked = 0
    for _case, _k, samples in generated_slices(n_cases=8, min_lesions=1):
        for s in samples:
            f = s["facts"]
            for text, _ in s["expressions"]:
                req = parse_expression(text)
                assert not req.unknown, (text, req.unknown)
                assert req.mentions_lesion
                if req.density:
                    assert req.density == f.density, text
                if req.segments and not f.segment_estimated:
                    assert f.segment in req.segments, text
                if req.size_mm and not is_comparative(text):
                    assert abs(req.size_mm - f.long_mm) <= max(1.0, 0.06 * f.long_mm), text
                checked += 1
    assert checked > 200


@pytest.mark.parametrize("text, density, segments, comparative", [
    ("the smaller low-density nodule in the right lobe", "hypo", (), ("size", -1)),
    ("the 1.1 cm hyperattenuating lesion in the right posterior section", "hyper", ("VI", "VII"), None),
    ("the most anterior isodense lesion in S4 of the left lobe", "iso", ("IV",), ("row", -1)),
    ("the more right-sided hypodense lesion in segment VIII", "hypo", ("VIII",), ("col", -1)),
    ("the larger of the two hypodense lesions in segment I (the caudate lobe)", "hypo", ("I",), ("size", 1)),
])
def test_parse_reads_density_location_and_comparatives(text, density, segments, comparative):
    req = parse_expression(text)
    assert (req.density, req.segments, req.comparative) == (density, segments, comparative)
    assert not req.unknown


@pytest.mark.parametrize("text", ["asdkjh qwpoeiru", "garden seven quickly", "zzz", "blue window tomorrow"])
def test_nonsense_names_no_lesion(text):
    assert not parse_expression(text).mentions_lesion


def true_candidates(case, k, samples):
    """Candidates whose facts are the generator's (the facts its expressions were written from)."""
    ids, cands = [], []
    for s in samples:
        m = s["mask"]
        cands.append(Candidate(len(cands) + 1, m, k, s["facts"], float(case.ct[k][m].mean())))
        ids.append(s["lesion_id"])
    return ids, cands


def test_comparatives_pick_the_right_candidate_with_the_resolver_alone():
    right = total = 0
    for case, k, samples in generated_slices():
        ids, cands = true_candidates(case, k, samples)
        for s in samples:
            rng = np.random.default_rng(len(s["expressions"]) + k)
            texts = [t for t, _ in s["expressions"] + compose_expressions(s["facts"], [c.facts for c in cands], rng)
                     if is_comparative(t)]
            for text in texts:
                res = resolve(text, cands, use_net=False)
                total += 1
                right += res.chosen is not None and ids[res.chosen.number - 1] == s["lesion_id"]
    assert total >= 20
    assert right / total >= 0.95, f"{right}/{total}"


def test_hard_words_that_fit_no_candidate_are_not_found():
    density_checks = slices = 0
    for case, k, samples in generated_slices(n_cases=6):
        _, cands = true_candidates(case, k, samples)
        if any(c.facts.calcified for c in cands):
            continue
        slices += 1
        res = resolve("the calcified lesion", cands, use_net=False)
        assert res.status == "not found" and "calcified" in res.reason
        densities = {c.facts.density for c in cands}
        # an iso candidate is a borderline measurement next to either word (the resolver keeps it, weakly)
        if densities & {None, "iso"}:
            continue
        for d, word in (("hyper", "hyperdense"), ("hypo", "hypodense")):
            if d not in densities:
                assert resolve(f"the {word} lesion", cands, use_net=False).status == "not found"
                density_checks += 1
        assert resolve("asdkjh qwpoeiru", cands).status == "not found"
        assert resolve("the cyst in the left kidney", cands).status == "not found"
    assert slices and density_checks, "no generated slice without calcification and borderline densities"


def test_candidates_from_masks_carry_the_generators_facts():
    """Facts measured on candidates (from the lesion map, liver map given) agree with the generator's."""
    checked = 0
    for case, k, samples in generated_slices(n_cases=6):
        sp = (case.spacing[1], case.spacing[0])
        lesion_map = np.zeros(case.ct[k].shape, np.float32)
        for s in samples:
            lesion_map[s["mask"]] = 1.0
        cands, source = slice_candidates(case.ct[k], lesion_map, lesion_map, case.liver[k].astype(np.float32), sp)
        assert source == "lesion map"
        for s in samples:
            f = s["facts"]
            best = max(cands, key=lambda c: (c.full_mask & s["mask"]).sum())
            if not np.array_equal(best.full_mask, s["mask"]):
                continue  # touching lesions merge, a lesion cut in two pieces splits: nothing to compare
            assert abs(best.facts.long_mm - f.long_mm) <= 0.15 * f.long_mm
            assert best.facts.density == f.density
            checked += 1
    assert checked >= 10


def test_over_a_run_of_slices_the_larger_lesion_is_the_larger_volume():
    """A flat region at the run's edge can be longer on one slice than a real lesion is: "the larger" over a
    run means the larger lesion (the shipped demo's false edge region won on its long axis)."""
    from lsms_core.referring.candidates import volume_candidates

    zz, yy, xx = np.mgrid[:12, :96, :96]
    ct = np.full((12, 96, 96), -100.0, np.float32)
    liver = (yy - 48) ** 2 + (xx - 48) ** 2 < 44**2
    ct[liver] = 60.0
    ball = ((zz - 6) * 2.5) ** 2 + ((yy - 40) * 1.0) ** 2 + ((xx - 30) * 1.0) ** 2 < 11**2  # 22 mm, 9 slices
    disk = (zz == 0) & ((yy - 60) ** 2 / 16**2 + (xx - 62) ** 2 / 5**2 < 1)  # 32 mm long, one slice
    lesions = ball | disk
    ct[lesions] = 10.0
    lesion_map = lesions.astype(np.float32)
    cands, _ = volume_candidates(ct, lesion_map * 0.6, lesion_map, liver.astype(np.float32), (2.5, 1.0, 1.0))
    assert len(cands) == 2
    by_region = {("ball" if (c.full_mask & ball).any() else "disk"): c for c in cands}
    assert by_region["disk"].facts.long_mm > by_region["ball"].facts.long_mm
    for text in ("the larger hypodense lesion", "the largest lesion"):
        assert resolve(text, cands).chosen is by_region["ball"], text
    assert resolve("the smaller hypodense lesion", cands).chosen is by_region["disk"]


@pytest.mark.parametrize("lesion_hu, density", [(35.0, "hypo"), (165.0, "hyper"), (96.0, "iso")])
def test_a_region_that_covers_only_the_middle_of_a_lesion_still_reads_its_density(lesion_hu, density):
    """The lesion map at 0.5 finds the middle of a large tumour and only hints at its rim (as on real CT):
    a ring right around the region would lie on the tumour itself and call it iso."""
    yy, xx = np.mgrid[:200, :200]
    r = np.hypot(yy - 100, xx - 100)
    ct = np.where(r < 90, 100.0, -1000.0).astype(np.float32)
    ct[r < 40] = lesion_hu
    ct += np.random.default_rng(0).normal(0, 8, ct.shape).astype(np.float32)
    lesion = np.where(r < 25, 0.95, np.where(r < 40, 0.35, 0.0)).astype(np.float32)
    liver = (r < 90).astype(np.float32)
    cands, _ = slice_candidates(ct, lesion, lesion, liver, (1.0, 1.0))
    assert len(cands) == 1
    assert cands[0].facts.density == density, cands[0].facts.density_diff_hu
