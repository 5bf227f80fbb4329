"""Which candidate the words mean: the network's referring score and the facts the words state, combined.

Per candidate, every stated fact gets a fit in [0, 1] (density, calcification, size, shape, boundary,
segment/lobe, anterior/posterior, dome/hilum/capsule); the fact score is their weighted mean
(``FACT_WEIGHTS``; 1.0 when the words state no fact). A comparative ("the larger", "the most anterior")
then ranks the candidates that fit the other words. The combined score is
``NET_WEIGHT * net + (1 - NET_WEIGHT) * facts``.

The weights were measured, not guessed: the demo network's candidates were kept for every expression of a
generated tuning set (seed 5151, 468 expressions) and the rule's choice scored against the reference
lesion. Of the expressions whose lesion was among the candidates, the choice was right in 85.6 % with
``NET_WEIGHT`` 0.5 and equal fact weights, 90.8 % with 0.2 (the network's referring score tells two lesions
of one slice apart less well than the measured facts do: 67.5 % alone), 92.4 % with the fact weights
below; on the held-out test set (seed 424242, 236 such expressions) 84.7 -> 88.1 -> 89.4 %. Lower net
weights change nothing more; the network still breaks ties between candidates the words fit equally (and
decides alone with no words).
``AMBIGUITY_MARGIN`` shrank with the net weight (0.05 -> 0.02, so a tie in the network's scores alone is
called as often as before): the choices it calls "found" were right as often or more (tuning set 88.7 ->
93.5 %, test set 91.5 -> 91.8 %, the real CT of the model card 83.8 % both), with half the warnings.

Outcomes: ``found`` (the best candidate), ``ambiguous`` (the best two within ``AMBIGUITY_MARGIN``; both
are shown, the best is still the one drawn), ``not found`` (no candidate; words none of which the
vocabulary reads as a lesion word; words about another organ; or a hard fact - density, calcification -
that fits no candidate). A "not found" returns no mask and says why. No words at all means "any lesion":
the network's choice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from lsms_core.referring.candidates import Candidate
from lsms_core.referring.parse import Request, parse_expression

NET_WEIGHT = 0.2
#: a fact's weight in the fact score. The segment estimate separates lesions best (its fits already grade
#: near misses); boundary and dome/hilum/capsule words, measured on the network's smooth regions, mostly add
#: noise. Unlisted facts weigh 1.
FACT_WEIGHTS: dict[str, float] = {"location": 2.0, "boundary": 0.5, "near": 0.5}
AMBIGUITY_MARGIN = 0.02
#: a stated size fits a candidate's long axis within a Gaussian of this share of the size (at least the mm)
SIZE_TOLERANCE = 0.25
SIZE_TOLERANCE_MM = 3.0
#: below this peak referring probability the network does not point at a candidate at all
NET_FLOOR = 0.05
#: when no candidate fits every other stated word, a comparative ranks those within this share of the best fit
COMPARATIVE_GROUP = 0.8
_SECTION = {"V": "VIII", "VIII": "V", "VI": "VII", "VII": "VI", "II": "III", "III": "II"}


@dataclass
class Resolution:
    status: str  # found | ambiguous | not found
    chosen: Candidate | None
    candidates: list[Candidate]
    request: Request
    reason: str = ""
    alternatives: list[Candidate] = field(default_factory=list)  # the close runner(s)-up when ambiguous

    def note(self) -> str:
        if self.status == "not found":
            return f"not found: {self.reason}"
        c = self.chosen
        text = f"candidate #{c.number} of {len(self.candidates)} ({self.reason})"
        if self.status == "ambiguous":
            others = ", ".join(f"#{a.number}" for a in self.alternatives)
            text += f"; ambiguous: {others} fit{'s' if len(self.alternatives) == 1 else ''} the words almost as well"
        return text

    def summary(self) -> dict:
        return {"status": self.status, "chosen": self.chosen.number if self.chosen else None,
                "reason": self.reason, "alternatives": [a.number for a in self.alternatives],
                "request": self.request.describe(), "unknown_words": list(self.request.unknown),
                "candidates": [c.summary() for c in self.candidates]}


def fact_fits(req: Request, c: Candidate) -> tuple[dict[str, float], list[str]]:
    """Fit of each stated fact (0..1), and the stated facts the candidate contradicts."""
    f = c.facts
    fits: dict[str, float] = {}
    if req.density:
        if f.density is None:
            fits["density"] = 0.5
        elif f.density == req.density:
            fits["density"] = 1.0
        else:  # iso next to hypo/hyper is a borderline measurement, hypo against hyper is a contradiction
            fits["density"] = 0.2 if "iso" in (f.density, req.density) else 0.0
    if req.calcified:
        fits["calcified"] = 1.0 if f.calcified or c.mean_hu > 250 or _has_bright_core(c) else 0.0
    if req.size_mm:
        tol = max(SIZE_TOLERANCE_MM, SIZE_TOLERANCE * req.size_mm)
        fits["size"] = math.exp(-((f.long_mm - req.size_mm) / tol) ** 2)
    # A stated fact the candidate's measurement could not settle (too small to call its shape) fits at 0.4:
    # a little below "maybe", so it never joins a comparative's group of candidates that fit every word.
    if req.shape:
        close = {("round", "oval"), ("oval", "round"), ("lobulated", "irregular"), ("irregular", "lobulated")}
        fits["shape"] = (0.4 if f.shape is None else 1.0 if f.shape == req.shape
                         else 0.5 if (f.shape, req.shape) in close else 0.1)
    if req.boundary:
        fits["boundary"] = 0.4 if f.boundary is None else 1.0 if f.boundary == req.boundary else 0.25
    # Type and enhancement are known only where the data say them (a generator, an annotation); image
    # measurements cannot tell a cyst from a metastasis, so a candidate without them is neither helped nor hurt.
    if req.lesion_type and f.lesion_type:
        fits["type"] = 1.0 if f.lesion_type == req.lesion_type else 0.0
    if req.enhancement and f.enhancement:
        said = f.enhancement.lower()
        fits["enhancement"] = sum(w in said for w in req.enhancement) / len(req.enhancement)
    if req.segments:
        if f.segment in req.segments:
            fits["location"] = 1.0
        elif f.segment and _SECTION.get(f.segment) in req.segments:
            fits["location"] = 0.6  # the same section: superior/inferior is the least certain estimate
        elif f.lobe and req.lobe and f.lobe == req.lobe:
            fits["location"] = 0.35
        else:
            fits["location"] = 0.0
    elif req.lobe:
        fits["location"] = 1.0 if f.lobe == req.lobe else (0.5 if f.lobe is None else 0.0)
    if req.ap:
        fits["ap"] = 1.0 if f.ap == req.ap else (0.5 if f.ap is None else 0.0)
    if req.near:
        fits["near"] = 1.0 if req.near in f.near else 0.3
    unmet = [k for k, v in fits.items() if v == 0.0]
    return fits, unmet


def weighted_fit(fits: dict[str, float]) -> float:
    """The fact score: the stated facts' fits weighted by ``FACT_WEIGHTS``; 1.0 when none is stated."""
    if not fits:
        return 1.0
    total = sum(FACT_WEIGHTS.get(k, 1.0) for k in fits)
    return sum(FACT_WEIGHTS.get(k, 1.0) * v for k, v in fits.items()) / total


def _has_bright_core(c: Candidate) -> bool:
    return bool(c.facts.calcified)


def _comparative_rank(req: Request, group: list[Candidate]) -> dict[int, float]:
    """1.0 for the candidate the comparative picks in ``group``, falling off for the others."""
    kind, direction = req.comparative
    def value(c: Candidate) -> float:
        if kind == "size":
            # Over a run of slices "the larger" is the larger lesion, not the longer cross-section: a
            # flat region at the run's edge can be long on one slice and small in volume.
            return c.volume_ml if c.volume_ml is not None else c.facts.long_mm
        row, col = c.facts.centroid_mm
        return row if kind == "row" else col
    ordered = sorted(group, key=value, reverse=direction > 0)
    return {c.number: (1.0 if i == 0 else 0.3 / i) for i, c in enumerate(ordered)}


def resolve(expression: str, candidates: list[Candidate], *, net_weight: float = NET_WEIGHT,
            margin: float = AMBIGUITY_MARGIN, use_net: bool = True, use_facts: bool = True) -> Resolution:
    """Score every candidate for ``expression`` and decide (see the module's docstring)."""
    req = parse_expression(expression)
    if not candidates:
        return Resolution("not found", None, [], req, "the network found no lesion on the slice(s)")
    if not expression.strip():
        req.known = ["lesion"]  # no words: any lesion, the network's choice
    if req.other_organ:
        return Resolution("not found", None, candidates, req,
                          f"the words are about the {req.other_organ}, not a liver lesion")
    if not req.mentions_lesion:
        # Words were given and none of them is a lesion word the vocabulary knows: answering with the
        # network's favourite lesion would pass a guess off as an answer (the demo network segmented a
        # tumour for "asdkjh qwpoeiru"), so the words are sent back instead.
        unknown = " ".join(req.unknown[:6])
        return Resolution("not found", None, candidates, req,
                          f"none of the words describe a lesion ({unknown}); name it, e.g. 'the hypodense "
                          "lesion in segment VI'")
    fits_of: dict[int, dict[str, float]] = {}
    for c in candidates:
        fits, unmet = fact_fits(req, c)
        fits_of[c.number] = fits
        c.unmet = unmet
        c.fact_score = weighted_fit(fits)
        if any(h in unmet for h in req.hard):
            c.fact_score = 0.0
    if req.hard and all(any(h in c.unmet for h in req.hard) for c in candidates):
        hard = [h for h in req.hard if all(h in c.unmet for c in candidates)] or req.hard
        what = {"density": f"{req.density}dense", "calcified": "calcified", "organ": "in that organ"}
        return Resolution("not found", None, candidates, req,
                          f"no {' or '.join(what[h] for h in hard)} lesion among the {len(candidates)} found")
    if req.comparative and len(candidates) > 1:
        # The comparative ranks the candidates that fit every other stated word, as the generator and a
        # reader mean it ("the larger hypodense lesion in segment VI": the larger of the hypodense ones in
        # VI, not a larger one in V); when fewer than two fit them all, those close to the best fit.
        group = [c for c in candidates if min(fits_of[c.number].values(), default=1.0) >= 0.5]
        if len(group) < 2:  # words with a comparative describe two or more: the measured facts missed one
            best_fit = max(c.fact_score for c in candidates)
            group = [c for c in candidates if c.fact_score >= COMPARATIVE_GROUP * best_fit and best_fit > 0]
        ranks = _comparative_rank(req, group or candidates)
        for c in candidates:
            c.fact_score = 0.5 * c.fact_score + 0.5 * ranks.get(c.number, 0.0)
    for c in candidates:
        if use_net and use_facts:
            c.score = net_weight * c.net_score + (1.0 - net_weight) * c.fact_score
        elif use_net:
            c.score = c.net_score
        else:
            c.score = c.fact_score
    ranked = sorted(candidates, key=lambda c: (-c.score, c.number))
    best = ranked[0]
    if use_net and not use_facts and best.net_score < NET_FLOOR:
        return Resolution("not found", None, candidates, req, "the network points at no candidate")
    close = [c for c in ranked[1:] if best.score - c.score < margin]
    reason = _reason(req, best)
    if close:
        return Resolution("ambiguous", best, candidates, req, reason, alternatives=close)
    return Resolution("found", best, candidates, req, reason)


def _reason(req: Request, c: Candidate) -> str:
    said = req.describe()
    return f"best fit for '{said}': network {c.net_score:.2f}, facts {c.fact_score:.2f}"
