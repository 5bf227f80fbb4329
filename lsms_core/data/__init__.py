"""Referring-segmentation data: dataset format v1, expressions, synthetic CT, imports.

See ``shared/docs/dataset-format.md`` for the format. Public entry points:
``read_dataset`` / ``DatasetWriter`` (format), ``compose_expressions`` (expressions),
``synth_case`` / ``write_synth_dataset`` (synthetic CT), ``demo_case`` (the demo study).
Heavy modules are imported lazily by their users; this package import stays cheap.
"""

from lsms_core.data.format import DatasetWriter, RefDataset, Sample, read_dataset

__all__ = ["DatasetWriter", "RefDataset", "Sample", "read_dataset"]
