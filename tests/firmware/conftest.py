"""Shared by the firmware tests that run with the real broker."""

from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.firmware.process import board_lib, mpy_cross


@pytest.fixture(scope="session")
def contract_mpy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with contract.mpy: as source it does not fit a small heap (firmware/README.md)."""
    folder = tmp_path_factory.mktemp("mpy")
    mpy_cross(REPO / "machikit" / "contract.py", folder / "contract.mpy")
    return folder


@pytest.fixture(scope="session")
def board_mpy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A board's /lib: every firmware module and contract as .mpy (plus the fakes)."""
    return board_lib(tmp_path_factory.mktemp("board"))
