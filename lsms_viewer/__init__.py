"""LSMS Viewer: the PySide6 + pyqtgraph desktop application (``lsms_viewer.app``).

Importing the package protects the process against a PySide6 reference-counting bug that otherwise
aborts Python after a few thousand Qt calls (see ``lsms_viewer.qt_compat``); every window, tool and test
of the viewer goes through here first.
"""

from lsms_viewer.qt_compat import install_none_guard as _install_none_guard

_install_none_guard()
