"""CT volumes with exact geometry: loading (DICOM/NIfTI/NRRD/MHA) and mask writing.

``load_volume`` returns volumes in radiological (nearest-LPS) layout; ``save_mask``/``save_volume`` write
on the source file's own grid by default (see ``lsms_core.volume.write``).
"""

from lsms_core.volume.dicom import SeriesChoiceError, SeriesInfo
from lsms_core.volume.load import (
    SUPPORTED,
    list_series,
    load_mask,
    load_volume,
    orientation_code,
    scan_folder,
)
from lsms_core.volume.orient import from_source_array, reorient_to_lps, source_volume, to_source_array
from lsms_core.volume.volume import SourceGrid, Volume
from lsms_core.volume.write import (
    LabelInfo,
    check_target,
    read_label_sidecar,
    save_mask,
    save_volume,
    sidecar_path,
)

__all__ = [
    "Volume", "SourceGrid", "LabelInfo", "SeriesInfo", "SeriesChoiceError", "SUPPORTED",
    "load_volume", "list_series", "scan_folder", "load_mask", "orientation_code",
    "save_volume", "save_mask", "read_label_sidecar", "sidecar_path", "check_target",
    "reorient_to_lps", "to_source_array", "from_source_array", "source_volume",
]
