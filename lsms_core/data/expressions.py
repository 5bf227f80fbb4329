"""Referring expressions from lesion facts: full and partial, unambiguous on their slice.

``compose_expressions(target, lesions, rng)`` returns ``[(text, fraction), ...]``: one expression with all
known attributes (fraction 1.0), and partial ones with about half (0.5) and a quarter (0.25) of them, in
the style of RefHL-Seg and of radiology reports. Every expression is checked against the other lesions
on the same slice: when its attributes fit more than one lesion, a comparative is added ("the larger",
"the most anterior", "the more right-sided"); an expression that still fits several is dropped, never
emitted. Sides are always the patient's (columns run patient right -> left).
"""

from __future__ import annotations

import numpy as np

from lsms_core.data.facts import LesionFacts
from lsms_core.data.vocabulary import (
    BOUNDARY_PHRASES,
    DENSITY_WRITTEN,
    MAX_TOKENS,
    NEAR_PHRASES,
    PLURALS,
    ROMAN_TO_INT,
    SEGMENT_REGION,
    TYPE_NOUNS,
)

# The order is the order of importance: a full expression holds them all, a partial one a prefix-biased
# random subset.
ATTRIBUTES = ("location", "size", "density", "shape", "boundary", "type", "enhancement", "calcification",
              "near", "ap")
#: a size in words fits another lesion whose long axis is within this fraction (or 3 mm)
SIZE_TOLERANCE = 0.15


def available(f: LesionFacts) -> list[str]:
    """The attributes known for a lesion, in order of importance."""
    have = {
        "location": f.segment is not None or f.lobe is not None,
        "size": True,
        "density": f.density is not None,
        "shape": f.shape is not None,
        "boundary": f.boundary is not None,
        "type": f.lesion_type is not None,
        "enhancement": f.enhancement is not None,
        "calcification": f.calcified,
        "near": bool(f.near),
        "ap": f.ap is not None,
    }
    return [a for a in ATTRIBUTES if have[a]]


def _fits(other: LesionFacts, target: LesionFacts, attrs: set[str]) -> bool:
    """Would the words chosen for ``target`` also describe ``other``?"""
    if "location" in attrs:
        if target.segment is not None and other.segment != target.segment:
            return False
        if target.segment is None and other.lobe != target.lobe:
            return False
    if "size" in attrs:
        tol = max(3.0, SIZE_TOLERANCE * target.long_mm)
        if abs(other.long_mm - target.long_mm) > tol:
            return False
    pairs = {"density": "density", "shape": "shape", "boundary": "boundary", "type": "lesion_type",
             "enhancement": "enhancement", "ap": "ap"}
    for a, key in pairs.items():
        if a in attrs and getattr(other, key) != getattr(target, key):
            return False
    if "calcification" in attrs and not other.calcified:
        return False
    return not ("near" in attrs and not set(target.near[:1]) <= set(other.near))


def _comparative(target: LesionFacts, group: list[LesionFacts]) -> tuple[str, str] | None:
    """A (kind, word) that singles out ``target`` within ``group`` (size first, then position)."""
    n = len(group)
    others = [g for g in group if g is not target]
    sizes = [g.long_mm for g in others]
    more, most = ("more", "most")
    if target.long_mm >= 1.15 * max(sizes):
        return "size", "larger" if n == 2 else "largest"
    if target.long_mm <= min(sizes) / 1.15:
        return "size", "smaller" if n == 2 else "smallest"
    rows = [g.centroid_mm[0] for g in others]
    cols = [g.centroid_mm[1] for g in others]
    word = more if n == 2 else most
    if target.centroid_mm[0] <= min(rows) - 8:
        return "position", f"{word} anterior"
    if target.centroid_mm[0] >= max(rows) + 8:
        return "position", f"{word} posterior"
    if target.centroid_mm[1] <= min(cols) - 8:  # smaller column = patient right
        return "position", f"{word} right-sided"
    if target.centroid_mm[1] >= max(cols) + 8:
        return "position", f"{word} left-sided"
    return None


def _size_words(f: LesionFacts, rng, pre: bool) -> str:
    d = f.long_mm
    mm = f"{d:.0f} mm"
    if pre:
        return mm if d < 10 or rng.uniform() < 0.7 else f"{d / 10:.1f} cm"
    choice = rng.integers(0, 3)
    if choice == 0:
        return f"about {mm}"
    if choice == 1 and f.short_mm >= 2:
        return f"measuring {d:.0f} x {f.short_mm:.0f} mm"
    return f"about {d / 10:.1f} cm in diameter" if d >= 10 else f"about {mm} in diameter"


def _generic_noun(f: LesionFacts, rng) -> str:
    if f.long_mm < 8:
        return str(rng.choice(["focus", "nodule", "lesion"]))
    if f.long_mm <= 30:
        return str(rng.choice(["nodule", "lesion", "lesion"]))
    return "cyst" if f.lesion_type == "cyst" else str(rng.choice(["mass", "lesion"]))


def _location_words(f: LesionFacts, rng) -> str:
    if f.segment is not None:
        seg = f.segment
        lobe = {"caudate": "caudate lobe", "right": "right lobe", "left": "left lobe"}[f.lobe or "right"]
        if seg == "I":
            return str(rng.choice(["in the caudate lobe", "in segment I (the caudate lobe)"]))
        style = rng.integers(0, 4)
        if f.segment_estimated:
            style = 2 if style == 3 else style
        if style == 0:
            return f"in segment {seg} of the {lobe}"
        if style == 1:
            return f"in segment {seg}"
        if style == 2:
            return f"in the {lobe}" if f.segment_estimated else f"in S{ROMAN_TO_INT[seg]} of the {lobe}"
        return f"in {SEGMENT_REGION[seg]}"
    if f.lobe is not None:
        return str(rng.choice([f"in the {f.lobe} lobe", f"in the {f.lobe} hepatic lobe",
                               f"in the {f.lobe} lobe of the liver"]))
    return ""


def render(target: LesionFacts, attrs: set[str], comparative: tuple[str, str] | None, group_size: int,
           rng, *, paper_style: bool = False) -> str:
    """Words for the chosen attributes (and comparative) of ``target``."""
    noun = str(rng.choice(TYPE_NOUNS[target.lesion_type])) if "type" in attrs else _generic_noun(target, rng)
    if comparative is not None and "type" not in attrs and "shape" not in attrs and rng.uniform() < 0.2:
        noun = "one"  # "the larger one in the right lobe"
    pre: list[str] = []
    post: list[str] = []
    if comparative is not None:
        pre.append(comparative[1])
    if "size" in attrs and not paper_style and rng.uniform() < 0.6:
        pre.append(_size_words(target, rng, pre=True))
        size_post = False
    else:
        size_post = "size" in attrs
    if "shape" in attrs:
        pre.append(target.shape)
    if "density" in attrs:
        pre.append(str(rng.choice(DENSITY_WRITTEN[target.density])))
    if "boundary" in attrs:
        phrase = str(rng.choice(BOUNDARY_PHRASES[target.boundary]))
        if rng.uniform() < 0.35:
            pre.insert(len(pre) - ("density" in attrs), "well-defined" if target.boundary == "clear" else "ill-defined")
        else:
            post.append(phrase)
    if "enhancement" in attrs:
        post.append(target.enhancement)
    if "calcification" in attrs:
        post.append(str(rng.choice(["with calcification", "containing calcification"])))
    loc = _location_words(target, rng) if "location" in attrs else ""
    if "ap" in attrs and target.ap and target.ap in loc and target.segment:
        loc = f"in segment {target.segment}"  # not "the right posterior section ... posteriorly"
    if loc:
        post.append(loc)
    if "near" in attrs:
        post.append(str(rng.choice(NEAR_PHRASES[target.near[0]])))
    if "ap" in attrs:
        post.append(str(rng.choice([f"{target.ap}ly", f"in the {target.ap} part of the liver"])))
    if size_post:
        post.append(_size_words(target, rng, pre=False))
    use_plural = comparative is not None and comparative[0] == "size" and group_size == 2 and rng.uniform() < 0.4
    if use_plural:
        # "the larger of the two hypodense lesions in the right lobe"
        head = f"the {comparative[1]} of the two " + " ".join(pre[1:] + [PLURALS.get(noun, noun + 's')])
    else:
        article = "the" if (comparative is not None or not paper_style) else ("an" if (pre + [noun])[0][0] in "aeiouAEIOU" else "a")
        head = " ".join([article] + pre + [noun])
    # "with clear margins with calcification" -> "with clear margins and calcification"
    withs = [i for i, p in enumerate(post) if p.startswith("with ")]
    for i in withs[1:]:
        post[i] = "and " + post[i][5:]
    text = head
    for i, p in enumerate(post):
        sep = ", " if (paper_style and i == len(post) - 1 and size_post and len(post) > 1) else " "
        text += sep + p
    return " ".join(text.split())


_TOKENIZER: list = []


def token_count(text: str) -> int:
    """Tokens the project's text encoder (MiniLM WordPiece) makes of ``text``, [CLS] and [SEP] included."""
    if not _TOKENIZER:
        try:
            from transformers import AutoTokenizer

            from lsms_core.text import default_encoder_path

            _TOKENIZER.append(AutoTokenizer.from_pretrained(str(default_encoder_path()), local_files_only=True))
        except Exception:  # no tokenizer: a conservative estimate (medical words split into ~2 pieces)
            _TOKENIZER.append(None)
    tok = _TOKENIZER[0]
    if tok is None:
        return 2 + int(1.8 * len(text.split()) + 0.5)
    return len(tok(text)["input_ids"])


def _pick(attrs: list[str], k: int, rng) -> list[str]:
    """k attributes, favouring the important ones (location, size, density) as annotators do."""
    if k >= len(attrs):
        return list(attrs)
    w = np.array([1.0 / (1 + 0.35 * i) for i in range(len(attrs))])
    idx = rng.choice(len(attrs), size=k, replace=False, p=w / w.sum())
    return [attrs[i] for i in sorted(idx)]


def _resolve(target: LesionFacts, lesions: list[LesionFacts], chosen: list[str], pool: list[str]):
    """Make ``chosen`` unambiguous: add a comparative, or more attributes; None when impossible."""
    chosen = list(chosen)
    extra = [a for a in pool if a not in chosen]
    while True:
        group = [g for g in lesions if g is target or _fits(g, target, set(chosen))]
        if len(group) == 1:
            return chosen, None, 1
        comp = _comparative(target, group)
        if comp is not None:
            # the comparative replaces the words it contradicts ("the smaller of the two 19 mm lesions")
            drop = "size" if comp[0] == "size" else "ap"
            return [a for a in chosen if a != drop], comp, len(group)
        if not extra:
            return None
        chosen.append(extra.pop(0))


def compose_expressions(target: LesionFacts, lesions: list[LesionFacts], rng: np.random.Generator,
                        fractions: tuple[float, ...] = (1.0, 0.5, 0.25)) -> list[tuple[str, float]]:
    """Expressions for ``target`` (one of ``lesions``, the lesions visible on its slice), with fractions.

    The fraction says what share of the known attributes an expression holds (1.0 full, 0.5, 0.25), so
    evaluation can report the paper's full/partial text results separately.
    """
    if target not in lesions:
        lesions = [*lesions, target]
    pool = available(target)
    out: list[tuple[str, float]] = []
    seen: set[str] = set()
    for frac in fractions:
        k = len(pool) if frac >= 1.0 else max(1, round(frac * len(pool)))
        chosen = pool if frac >= 1.0 else _pick(pool, k, rng)
        paper = frac >= 1.0 and rng.uniform() < 0.5
        text = None
        while True:
            resolved = _resolve(target, lesions, chosen, pool)
            if resolved is None:
                break
            attrs, comp, n = resolved
            text = render(target, set(attrs), comp, n, rng, paper_style=paper)
            # The text encoder reads 32 tokens: drop the least important attributes of a long expression.
            droppable = [a for a in chosen if a not in ("location", "size", "density")]
            if token_count(text) <= MAX_TOKENS or not droppable:
                break
            chosen = [a for a in chosen if a != droppable[-1]]
        if text is None:
            continue
        if text not in seen:
            seen.add(text)
            out.append((text, frac))
    return out


def describe_count(lesions: list[LesionFacts]) -> dict[str, int]:
    """Size rank (1 = largest) of each lesion on a slice, for the manifest's attributes."""
    order = sorted(lesions, key=lambda f: -f.long_mm)
    return {f.lesion_id: i + 1 for i, f in enumerate(order)}
