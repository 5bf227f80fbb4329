"""What an expression asks for, read with the generator's own vocabulary (``lsms_core.data.vocabulary``).

``parse_expression("the smaller hypodense nodule in segment VI")`` gives :class:`Request`: density hypo,
segment VI (lobe right), comparative (size, smaller), and the words it could not read. Every phrase the
expression generator writes is readable here (a test composes thousands and parses them back).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lsms_core.data.vocabulary import (
    AP_WORDS,
    BOUNDARY_NOUNS,
    BOUNDARY_WORDS,
    CALCIFICATION_WORDS,
    COMPARATIVES,
    DENSITY_WORDS,
    ENHANCEMENT_WORDS,
    FUNCTION_WORDS,
    GENERIC_NOUNS,
    LIVER_WORDS,
    LOBE_OF_SEGMENT,
    LOBES,
    NEAR_WORDS,
    OTHER_ORGANS,
    ROMAN_TO_INT,
    SECTION_SEGMENTS,
    SEGMENTS,
    SHAPE_WORDS,
    TYPE_NOUNS,
)

_INT_TO_ROMAN = {v: k for k, v in ROMAN_TO_INT.items()}
_SIZE_MM = re.compile(r"(\d+(?:\.\d+)?)\s*(mm|cm)\b")
_SIZE_PAIR = re.compile(r"(\d+(?:\.\d+)?)\s*(?:x|by|×)\s*(\d+(?:\.\d+)?)\s*(mm|cm)\b")


@dataclass
class Request:
    """The facts an expression states (None = not said)."""

    text: str
    density: str | None = None  # hypo | hyper | iso
    calcified: bool = False
    lesion_type: str | None = None
    size_mm: float | None = None  # the long axis the words give
    shape: str | None = None
    boundary: str | None = None
    segments: tuple[str, ...] = ()  # Couinaud segments the location words allow (empty = any)
    lobe: str | None = None
    near: str | None = None
    ap: str | None = None  # anterior | posterior (position words, not a comparative)
    comparative: tuple[str, int] | None = None  # (fact: size | row | col, +1 largest / -1 smallest)
    enhancement: tuple[str, ...] = ()  # enhancement words ("rim", "washout", "scar", ...)
    other_organ: str | None = None  # the expression is about an organ that is not the liver
    known: list[str] = field(default_factory=list)  # words read as facts or as lesion nouns
    unknown: list[str] = field(default_factory=list)  # words it could not read

    @property
    def mentions_lesion(self) -> bool:
        """The words name or describe a lesion at all (not nonsense, not empty)."""
        return bool(self.known)

    @property
    def hard(self) -> list[str]:
        """Facts no candidate may contradict: a lesion of another density, without calcification, or not
        in the liver is not what was asked for."""
        out = []
        if self.density in ("hypo", "hyper"):
            out.append("density")
        if self.calcified:
            out.append("calcified")
        if self.other_organ:
            out.append("organ")
        return out

    def describe(self) -> str:
        parts = []
        if self.comparative:
            kind, d = self.comparative
            parts.append({("size", 1): "largest", ("size", -1): "smallest", ("row", -1): "most anterior",
                          ("row", 1): "most posterior", ("col", -1): "most right-sided",
                          ("col", 1): "most left-sided"}[(kind, d)])
        if self.size_mm:
            parts.append(f"{self.size_mm:.0f} mm")
        for word in (self.shape, self.density and f"{self.density}dense", self.boundary and f"{self.boundary} margins",
                     self.lesion_type):
            if word:
                parts.append(word)
        if self.calcified:
            parts.append("calcified")
        if self.segments:
            parts.append("segment " + "/".join(self.segments))
        elif self.lobe:
            parts.append(f"{self.lobe} lobe")
        if self.ap:
            parts.append(self.ap)
        if self.near:
            parts.append(f"near the {self.near}")
        return ", ".join(parts) or "any lesion"


def _has(text: str, phrase: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", text) is not None


# Long by design: one pass of rules in order (sizes, comparatives, facts, location), noting words read.
def parse_expression(text: str) -> Request:
    low = " ".join(text.lower().replace(",", " ").replace(";", " ").split())
    req = Request(text=text)
    used: list[str] = []

    def take(phrase: str) -> None:
        used.append(phrase)

    # sizes first: "measuring 21 x 15 mm", "about 4.5 cm in diameter", "the 18 mm lesion"
    pair = _SIZE_PAIR.search(low)
    if pair:
        req.size_mm = float(pair.group(1)) * (10.0 if pair.group(3) == "cm" else 1.0)
        take(pair.group(0))
    else:
        single = _SIZE_MM.search(low)
        if single:
            req.size_mm = float(single.group(1)) * (10.0 if single.group(2) == "cm" else 1.0)
            take(single.group(0))
    # comparatives: "the larger", "the most anterior", "more right-sided"
    for word, (kind, direction) in COMPARATIVES.items():
        if kind in ("row", "col"):
            if re.search(rf"\b(more|most)\s+{re.escape(word)}", low):
                req.comparative = (kind, direction)
                take(word)
                break
        elif _has(low, word):
            req.comparative = (kind, direction)
            take(word)
            break
    for key, words in DENSITY_WORDS.items():
        if any(_has(low, w) for w in words):
            req.density = key
            used.extend(w for w in words if _has(low, w))
            break
    if any(_has(low, w) for w in CALCIFICATION_WORDS):
        req.calcified = True
        used.extend(w for w in CALCIFICATION_WORDS if _has(low, w))
    for kind, nouns in TYPE_NOUNS.items():
        for noun in nouns:
            if _has(low, noun.lower()) or _has(low, noun.lower() + "s"):
                req.lesion_type = kind
                take(noun.lower())
        if req.lesion_type:
            break
    if req.lesion_type is None and (_has(low, "metastases") or _has(low, "cystic")):
        req.lesion_type = "metastasis" if _has(low, "metastases") else "cyst"
        take("metastases" if req.lesion_type == "metastasis" else "cystic")
    for shape, words in SHAPE_WORDS.items():
        if any(_has(low, w) for w in words):
            req.shape = shape
            used.extend(w for w in words if _has(low, w))
            break
    for boundary, words in BOUNDARY_WORDS.items():
        if any(_has(low, w) for w in words):
            req.boundary = boundary
            used.extend(w for w in words if _has(low, w))
            break
    # location: "segment VI", "S6", "segment I (the caudate lobe)", "the right posterior section", lobes
    segs: list[str] = []
    for m in re.finditer(r"\bsegments?\s+((?:[ivx]+|\d)(?:\s*(?:and|/|,|-)\s*(?:[ivx]+|\d))*)\b", low):
        for tok in re.split(r"\s*(?:and|/|,|-)\s*", m.group(1)):
            seg = tok.upper() if tok.upper() in SEGMENTS else _INT_TO_ROMAN.get(int(tok)) if tok.isdigit() else None
            if seg:
                segs.append(seg)
        take(m.group(0))
    for m in re.finditer(r"\bs([1-8])\b", low):
        segs.append(_INT_TO_ROMAN[int(m.group(1))])
        take(m.group(0))
    for section, members in SECTION_SEGMENTS.items():
        if _has(low, section):
            segs.extend(members if not segs else [])
            take(section)
    if segs:
        req.segments = tuple(dict.fromkeys(segs))
        lobes = {LOBE_OF_SEGMENT[s] for s in req.segments}
        req.lobe = lobes.pop() if len(lobes) == 1 else None
    for lobe in LOBES:
        if re.search(rf"\b{lobe}\s+(?:hepatic\s+)?(?:lobe|liver|hemiliver)\b", low) or _has(low, f"{lobe} lobe"):
            req.lobe = req.lobe or lobe
            take(lobe)
    for near, words in NEAR_WORDS.items():
        if any(_has(low, w) for w in words):
            req.near = near
            used.extend(w for w in words if _has(low, w))
            break
    for ap, words in AP_WORDS.items():
        hits = [w for w in words if _has(low, w) and not re.search(rf"\b(more|most)\s+{w}\b", low)
                and not re.search(rf"\b{w}\s+section\b", low)]
        if hits:
            req.ap = ap
            used.extend(hits)
            break
    req.enhancement = tuple(w for w in ("rim", "washout", "scar", "fill-in", "peripheral", "arterial",
                                        "homogeneous", "without enhancement", "capsule")
                            if _has(low, w) and not (w == "capsule" and req.near == "capsule"))
    for organ in OTHER_ORGANS:
        if _has(low, organ):
            req.other_organ = organ
            break
    # which words were read: facts, nouns, liver words; the rest is unknown (nonsense, typos, other topics)
    known_words = set()
    for phrase in used:
        known_words.update(re.findall(r"[a-z0-9.]+(?:-[a-z]+)?", phrase))
    nouns = set(GENERIC_NOUNS) | {w for n in TYPE_NOUNS.values() for x in n for w in x.lower().split()}
    words = re.findall(r"[a-z0-9][a-z0-9.\-]*", low)
    known, unknown = [], []
    for w in words:
        base = w.strip(".-")
        if base in known_words or base in nouns or base.rstrip("s") in nouns or base in LIVER_WORDS:
            known.append(base)
        elif (base in FUNCTION_WORDS or base in ENHANCEMENT_WORDS or base in BOUNDARY_NOUNS
              or base.replace(".", "").isdigit()):
            continue
        elif base in (req.other_organ or "",) or base in OTHER_ORGANS:
            known.append(base)
        else:
            unknown.append(base)
    req.known = known
    req.unknown = unknown
    return req
