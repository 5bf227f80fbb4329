"""Referring-segmentation data: dataset format v1, expressions, synthetic CT, imports.

See ``shared/docs/dataset-format.md`` for the format. Modules:
``format`` (read_dataset, DatasetWriter, assign_splits), ``torch_dataset`` (RefSegDataset),
``facts`` (what masks say about each lesion), ``expressions`` (compose_expressions),
``synth`` / ``synth_dataset`` (synthetic CT: synth_case, write_synth_dataset), ``demo`` (the shipped demo
study), ``from_masks`` (CT + lesion masks -> lines), ``lvit`` (LViT-style import), ``check``, ``preview``.
Heavy modules are imported lazily by their users; this package import stays cheap.
"""

from lsms_core.data.format import DatasetWriter, RefDataset, Sample, read_dataset

__all__ = ["DatasetWriter", "RefDataset", "Sample", "read_dataset"]
