"""Box-prompted refinement (LiteMedSAM): the second stage of two-stage referring segmentation.

LSMS decides which lesion the words mean; the refiner redraws that lesion's edge from a box around it.
"""

from lsms_core.refiner.refiner import NAME, Refiner, available, refiner_folder

__all__ = ["NAME", "Refiner", "available", "refiner_folder"]
