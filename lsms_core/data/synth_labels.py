"""Synthetic CT: the organ labels, their names, the contrast phases and the HU and texture tables per label,
and the error raised for settings outside them.

Part of the synthetic CT generator (``lsms_core.data.synth``, whose docstring describes a case).
"""

from __future__ import annotations

from lsms_core.errors import LSMSError

# ---------------------------------------------------------------------------------------------- labels
AIR, TABLE, TABLE_CORE, SKIN, FAT, MUSCLE, CORTEX, MARROW, LUNG, LIVER, HEPATIC_VEIN, PORTAL_VEIN = range(12)
SPLEEN, KIDNEY_CORTEX, KIDNEY_MEDULLA, STOMACH_WALL, STOMACH_FLUID, GAS, BOWEL_WALL, BOWEL_FLUID = range(12, 20)
STOOL, GALLBLADDER, AORTA, IVC, PANCREAS, CSF, VISCERAL_FAT, CALCIUM = range(20, 28)
N_LABELS = 28
ORGAN_NAMES = {
    LIVER: "liver", HEPATIC_VEIN: "hepatic vein", PORTAL_VEIN: "portal vein", SPLEEN: "spleen",
    KIDNEY_CORTEX: "kidney cortex", KIDNEY_MEDULLA: "kidney medulla", STOMACH_WALL: "stomach wall",
    STOMACH_FLUID: "stomach contents", GAS: "bowel gas", BOWEL_WALL: "bowel wall", BOWEL_FLUID: "bowel contents",
    STOOL: "stool", GALLBLADDER: "gallbladder", AORTA: "aorta", IVC: "inferior vena cava",
    PANCREAS: "pancreas", LUNG: "lung", CORTEX: "cortical bone", MARROW: "cancellous bone",
    MUSCLE: "muscle", FAT: "subcutaneous fat", VISCERAL_FAT: "visceral fat", SKIN: "skin", CSF: "spinal canal",
    TABLE: "table", TABLE_CORE: "table core", CALCIUM: "calcification",
}
#: Couinaud segments as label numbers 1..8 in the segment map (0 = not liver).
PHASES = ("non-contrast", "arterial", "portal venous", "delayed")

# Mean HU of each structure per phase (non-contrast, arterial, portal venous, delayed): textbook values.
_HU = {
    AIR: (-1000,) * 4, TABLE: (120,) * 4, TABLE_CORE: (-760,) * 4, SKIN: (35,) * 4, FAT: (-102,) * 4,
    VISCERAL_FAT: (-95,) * 4, MUSCLE: (48, 55, 60, 56), CORTEX: (720,) * 4, MARROW: (190,) * 4,
    LUNG: (-860,) * 4, LIVER: (58, 76, 110, 92), HEPATIC_VEIN: (40, 55, 165, 125),
    PORTAL_VEIN: (40, 125, 180, 130), SPLEEN: (47, 118, 122, 98), KIDNEY_CORTEX: (32, 185, 170, 135),
    KIDNEY_MEDULLA: (30, 75, 150, 145), STOMACH_WALL: (45, 95, 85, 70), STOMACH_FLUID: (14,) * 4,
    GAS: (-1000,) * 4, BOWEL_WALL: (42, 100, 90, 70), BOWEL_FLUID: (18,) * 4, STOOL: (-120,) * 4,
    GALLBLADDER: (8,) * 4, AORTA: (42, 310, 175, 120), IVC: (40, 85, 145, 118), PANCREAS: (45, 120, 100, 80),
    CSF: (15,) * 4, CALCIUM: (550,) * 4,
}
# Amplitude of the slowly varying texture (HU) per structure: organ heterogeneity, fat strands, stool.
_TEX = {FAT: 9.0, VISCERAL_FAT: 12.0, LIVER: 5.0, SPLEEN: 6.0, MUSCLE: 7.0, MARROW: 45.0, LUNG: 25.0,
        STOOL: 260.0, KIDNEY_CORTEX: 6.0, PANCREAS: 12.0, STOMACH_FLUID: 6.0, BOWEL_FLUID: 6.0, CORTEX: 120.0}


class SynthError(LSMSError):
    """Synthetic data cannot be made with the requested settings."""
