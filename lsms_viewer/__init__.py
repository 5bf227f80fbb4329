"""LSMS Viewer: the PySide6 + pyqtgraph desktop application (``lsms_viewer.app``).

Nothing is imported here, so ``lsms --help`` (which loads the viewer's command plug-ins) stays fast.
"""
