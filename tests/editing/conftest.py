import pytest
from helpers_editing import phantom_volume

from lsms_viewer.state.document import Document


@pytest.fixture
def volume():
    return phantom_volume()


@pytest.fixture
def document(volume):
    return Document(volume)


@pytest.fixture
def make_window(qtbot, volume):
    """The real main window showing ``volume`` with the editing tools attached (offscreen Qt)."""
    from lsms_viewer.editing_ui import attach_editing
    from lsms_viewer.main_window import MainWindow

    def make(width: int, height: int):
        win = MainWindow()
        qtbot.addWidget(win)
        win.resize(width, height)
        win.show()
        qtbot.waitExposed(win)
        win.set_volume(volume)
        attach_editing(win)  # a second call: the window attached once already; this must be harmless
        return win

    return make
