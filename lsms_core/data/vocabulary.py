"""The words of liver-lesion expressions: one vocabulary for the generator, the checker and the parser.

``expressions.py`` writes with these words, ``lsms_core.referring.parse`` reads them back, and the
annotation checks compare them against measurements, so a word one of them knows is known to all (a
phrase the generator writes that the parser cannot read is a test failure, not a silent miss).
Sides are always the patient's; Couinaud segments are Roman numerals I-VIII.
"""

from __future__ import annotations

SEGMENTS = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII")
ROMAN_TO_INT = {s: i + 1 for i, s in enumerate(SEGMENTS)}
LOBE_OF_SEGMENT = {"I": "caudate", "II": "left", "III": "left", "IV": "left",
                   "V": "right", "VI": "right", "VII": "right", "VIII": "right"}
#: the sections (pairs of segments) the generator also names a segment by
SEGMENT_REGION = {"I": "the caudate lobe", "II": "the left lateral section", "III": "the left lateral section",
                  "IV": "the left medial section", "V": "the right anterior section",
                  "VI": "the right posterior section", "VII": "the right posterior section",
                  "VIII": "the right anterior section"}
SECTION_SEGMENTS = {
    "caudate lobe": ("I",), "left lateral section": ("II", "III"), "left medial section": ("IV",),
    "right anterior section": ("V", "VIII"), "right posterior section": ("VI", "VII"),
}
LOBES = ("right", "left", "caudate")

LESION_TYPES = ("cyst", "hemangioma", "hcc", "metastasis", "fnh")
#: nouns per lesion type (the first is the display name)
TYPE_NOUNS = {"cyst": ("cyst", "cystic lesion"), "hemangioma": ("hemangioma",),
              "hcc": ("hepatocellular carcinoma", "HCC"), "metastasis": ("metastasis", "metastatic lesion"),
              "fnh": ("focal nodular hyperplasia", "FNH")}
#: words that name a lesion without saying its type
GENERIC_NOUNS = ("lesion", "nodule", "mass", "focus", "tumour", "tumor", "one", "lesions", "nodules", "masses",
                 "foci", "tumours", "tumors", "abnormality", "finding", "spot", "area")
PLURALS = {"one": "lesions", "lesion": "lesions", "nodule": "nodules", "mass": "masses", "focus": "foci",
           "cyst": "cysts", "cystic lesion": "cystic lesions", "hemangioma": "hemangiomas", "HCC": "HCCs",
           "hepatocellular carcinoma": "hepatocellular carcinomas", "metastasis": "metastases",
           "metastatic lesion": "metastatic lesions", "focal nodular hyperplasia": "FNH lesions", "FNH": "FNHs"}

DENSITY_WORDS = {"hypo": ("hypodense", "low-density", "hypoattenuating", "low density", "hypoattenuation",
                          "dark"),
                 "hyper": ("hyperdense", "high-density", "hyperattenuating", "high density", "bright"),
                 "iso": ("isodense", "iso-attenuating", "isoattenuating")}
#: the words the generator writes for each density (a subset of DENSITY_WORDS, in its order)
DENSITY_WRITTEN = {"hypo": ("hypodense", "low-density", "hypoattenuating"),
                   "hyper": ("hyperdense", "high-density", "hyperattenuating"),
                   "iso": ("isodense", "iso-attenuating")}
DENSITY_DISPLAY = {"hypo": "hypodense", "hyper": "hyperdense", "iso": "isodense"}

SHAPES = ("round", "oval", "lobulated", "irregular")
SHAPE_WORDS = {"round": ("round", "rounded", "spherical", "circular"), "oval": ("oval", "ovoid", "elliptical"),
               "lobulated": ("lobulated",), "irregular": ("irregular",)}
BOUNDARY_PHRASES = {"clear": ("with clear margins", "with a sharp boundary", "with well-defined margins"),
                    "blurred": ("with blurred margins", "with an ill-defined boundary", "with indistinct margins")}
BOUNDARY_WORDS = {"clear": ("clear", "sharp", "well-defined", "well defined", "well-circumscribed", "circumscribed"),
                  "blurred": ("blurred", "ill-defined", "ill defined", "indistinct", "poorly defined")}
#: nouns the boundary and position phrases hang on ("with blurred margins", "in the anterior part")
BOUNDARY_NOUNS = ("margin", "margins", "boundary", "border", "borders", "edge", "edges", "contour", "outline")
NEAR_PHRASES = {"dome": ("near the dome", "at the hepatic dome"), "hilum": ("near the hilum", "at the porta hepatis"),
                "capsule": ("beneath the capsule", "in a subcapsular position")}
NEAR_WORDS = {"dome": ("dome",), "hilum": ("hilum", "porta hepatis", "hilar"),
              "capsule": ("subcapsular", "beneath the capsule", "under the capsule")}
AP_WORDS = {"anterior": ("anterior", "anteriorly", "front"), "posterior": ("posterior", "posteriorly", "back")}
CALCIFICATION_WORDS = ("calcification", "calcified", "calcifications", "calcific")
#: enhancement phrases are kept verbatim as facts (generator knowledge); the parser only needs their words
ENHANCEMENT_WORDS = ("enhancement", "enhancing", "enhances", "washout", "capsule", "scar", "fill-in",
                     "centripetal", "peripheral", "nodular", "rim", "arterial", "hyperenhancement", "homogeneous",
                     "without", "central")

#: comparatives: (kind, direction) where direction +1 picks the largest value of the fact
COMPARATIVES = {
    "larger": ("size", +1), "largest": ("size", +1), "bigger": ("size", +1), "biggest": ("size", +1),
    "greater": ("size", +1), "greatest": ("size", +1),
    "smaller": ("size", -1), "smallest": ("size", -1), "tiny": ("size", -1),
    "anterior": ("row", -1), "posterior": ("row", +1),
    "right-sided": ("col", -1), "left-sided": ("col", +1),
}
#: organs with no liver lesion: an expression about them is not found in the liver
OTHER_ORGANS = ("kidney", "kidneys", "renal", "spleen", "splenic", "lung", "lungs", "pulmonary", "pancreas",
                "pancreatic", "gallbladder", "adrenal", "vertebra", "vertebral", "spine", "bone", "aorta", "aortic",
                "aneurysm", "lymph", "node", "bowel", "colon", "stomach", "gastric", "rib", "bladder", "uterus",
                "prostate", "ovary", "thyroid", "brain", "heart")
LIVER_WORDS = ("liver", "hepatic", "hepato", "lobe", "segment", "section", "hemiliver", "couinaud")
#: words that carry no fact (articles, prepositions, size and measure words)
FUNCTION_WORDS = ("the", "a", "an", "in", "of", "at", "with", "and", "near", "beneath", "about", "measuring",
                  "diameter", "mm", "cm", "x", "by", "on", "its", "part", "position", "two", "three", "four",
                  "side", "more", "most", "than", "is", "which", "that", "there", "this", "other", "seen",
                  "located", "lying", "containing", "showing", "show", "segment", "approximately", "approx",
                  "roughly", "size", "sized", "small", "large", "big", "within", "inside", "from", "to", "s")

MAX_TOKENS = 32  # the text encoder reads 32 tokens, [CLS] and [SEP] included
