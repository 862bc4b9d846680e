"""Owner-only folders and files, whatever the umask says.

The data folder holds the database with the devices' password hashes, the
broker's passwd file and plain passwords (*.secret). Under the common umask 022
they would be readable by every account on the machine, so they are created
0700 (folders) and 0600 (files), and looser modes found at start are tightened.
Windows has no such modes: the user's profile folder is private there already.
"""

import logging
import os
import threading
from pathlib import Path

from machikit.texts import say

log = logging.getLogger("machikit.private")
FOLDER_MODE = 0o700
FILE_MODE = 0o600
CHECKS_MODES = os.name != "nt"


def tighten(path: Path, mode: int) -> None:
    """Take away from path every permission beyond mode, and say so in the log."""
    if not CHECKS_MODES:
        return
    try:
        current = path.stat().st_mode & 0o777
    except FileNotFoundError:
        return
    if current & ~mode:
        path.chmod(current & mode)
        log.warning(say("private_tightened", path=path, old=f"{current:o}",
                        new=f"{current & mode:o}"))


def new_folders(path: Path) -> Path:
    """Create path and its missing parents owner-only; folders already there stay as
    they are (a folder the user chose, such as /etc/mosquitto, may be shared on purpose)."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        folder.mkdir(mode=FOLDER_MODE, exist_ok=True)
    return path


def private_folder(path: Path) -> Path:
    """A folder of machikit's own (data_dir, data_dir/broker): created owner-only,
    tightened if it exists."""
    new_folders(path)
    tighten(path, FOLDER_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create an empty owner-only file if it is missing; tighten it if it exists."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE))
    tighten(path, FILE_MODE)
    return path


def temporary_next_to(path: Path) -> Path:
    """A new owner-only file in path's folder, so os.replace() onto path is atomic."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.unlink(missing_ok=True)  # left over from a crash: never reuse its mode
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    return temporary


def write_private_text(path: Path, text: str) -> None:
    """Write text (UTF-8, LF) owner-only and atomically: readers never see half a file."""
    temporary = temporary_next_to(path)
    try:
        with temporary.open("w", encoding="utf-8", newline="\n") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def private_sqlite_files(database: Path) -> None:
    """Before sqlite3 opens it: the database file owner-only. SQLite gives its -wal and
    -shm files the database file's mode, so they follow; older loose ones are tightened."""
    new_folders(database.parent)
    private_file(database)  # an empty file is a valid new SQLite database
    for suffix in ("-wal", "-shm", "-journal"):
        tighten(database.with_name(database.name + suffix), FILE_MODE)
