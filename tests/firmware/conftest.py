"""Shared by the firmware tests that run with the real broker."""

from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.firmware.process import mpy_cross


@pytest.fixture(scope="session")
def contract_mpy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with contract.mpy: as source it does not fit a small heap (firmware/README.md)."""
    folder = tmp_path_factory.mktemp("mpy")
    mpy_cross(REPO / "machikit" / "contract.py", folder / "contract.mpy")
    return folder
