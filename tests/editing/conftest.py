import pytest
from helpers_editing import phantom_volume

from lsms_viewer.document import Document


@pytest.fixture
def volume():
    return phantom_volume()


@pytest.fixture
def document(volume):
    return Document(volume)
