"""CT volumes with exact geometry: loading (DICOM/NIfTI/NRRD/MHA) and mask writing."""

from lsms_core.volume.volume import Volume

__all__ = ["Volume"]
