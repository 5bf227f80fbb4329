"""Slice-view tools: the tool interface and pan (``base``), brush and eraser (``brush``), fill and pieces
(``click``). The pixel work is done by the Qt-free ``lsms_viewer.editing``."""
