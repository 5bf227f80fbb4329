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
def make_viewer(qtbot, volume):
    """The real viewer showing ``volume``, its window ``width`` x ``height`` (offscreen Qt)."""
    from lsms_viewer.app import build_viewer

    def make(width: int, height: int):
        viewer = build_viewer()
        qtbot.addWidget(viewer.window)
        viewer.window.resize(width, height)
        viewer.window.show()
        qtbot.waitExposed(viewer.window)
        viewer.opening.set_volume(volume)
        return viewer

    return make
