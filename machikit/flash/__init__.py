"""`machikit flash`: put the firmware, one app and a device's config on a MicroPython board
over USB (mpremote), offline, then reset it and wait for its first status message.

boards.py finds boards, bundle.py builds the board's files, copy.py writes them."""

# The package's API, as workshop mode uses it. None of these imports mpremote, pyserial or
# paho-mqtt until a board is actually touched.
from machikit.flash.boards import BoardPort, find_boards
from machikit.flash.bundle import build_bundle
from machikit.flash.copy import FlashError, flash_board, read_board_id
from machikit.flash.watch import wait_online

__all__ = ["BoardPort", "FlashError", "build_bundle", "find_boards", "flash_board",
           "read_board_id", "wait_online"]
