"""Reader and writer of the referring-segmentation dataset format, version 1.

The format (``shared/docs/dataset-format.md``)::

    <root>/dataset.json      {"format": "refhl-seg", "version": 1, "name", "description", "license", "created_by"}
    <root>/manifest.jsonl    one JSON object per line = one (slice, referred lesion) sample
    <root>/images/...        2D slices: .npy int16/float32 HU, or 8-bit windowed grayscale .png
    <root>/masks/...         2D masks: 8-bit .png or .npy, non-zero = the referred lesion

Reading validates every line and reports *all* problems with their manifest line numbers in one
:class:`DatasetError`; unknown keys (top-level and per line) are kept and written back unchanged.
Writing is atomic per file (temp file in the same folder, then ``os.replace``), never overwrites an
existing image or mask, and appending to a dataset keeps its lines and never reuses one of its case ids.
"""

from __future__ import annotations

# The parts, by job; everything is re-exported here, the import path the rest of the code uses.
from lsms_core.data.format_files import (  # noqa: F401
    _atomic_write_bytes,
    encode_image,
    encode_mask,
    read_image_file,
    read_mask_file,
)
from lsms_core.data.format_manifest import (  # noqa: F401
    FORMAT_NAME,
    FORMAT_VERSION,
    IMAGE_SUFFIXES,
    MASK_SUFFIXES,
    MAX_HEADER_BYTES,
    MAX_IMAGE_SIDE,
    MAX_MANIFEST_BYTES,
    SPLITS,
    Sample,
    assign_splits,
    parse_line,
)
from lsms_core.data.format_reader import RefDataset, outside_root, read_dataset, read_header  # noqa: F401
from lsms_core.data.format_writer import DatasetWriter  # noqa: F401
