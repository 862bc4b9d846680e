"""A QR code drawn in the terminal, so participants can point their phones at the screen.

Drawn with background colours (escape codes) and spaces only: no block characters, so
it shows the same on a UTF-8 terminal and on a Japanese Windows console (cp932), and on
light and dark themes alike. Each module is two spaces wide and one line high, which
is about square in a terminal font. reportlab (already used for the label sheet) makes
the code itself.
"""

import os

from reportlab.graphics.barcode import qrencoder

QUIET = 4  # modules of white border the QR standard asks for
DARK, LIGHT, RESET = "\033[40m", "\033[47m", "\033[0m"


def modules(text: str) -> list[list[bool]]:
    """True where the module is dark, with the quiet zone around it."""
    code = qrencoder.QRCode(None, qrencoder.QRErrorCorrectLevel.M)
    code.addData(text)
    code.make()
    size = code.getModuleCount()
    inner = [[bool(code.isDark(row, col)) for col in range(size)] for row in range(size)]
    blank = [False] * (size + 2 * QUIET)
    return ([list(blank) for _ in range(QUIET)]
            + [[False] * QUIET + row + [False] * QUIET for row in inner]
            + [list(blank) for _ in range(QUIET)])


def render(text: str) -> str:
    lines = []
    for row in modules(text):
        cells = "".join((DARK if dark else LIGHT) + "  " for dark in row)
        lines.append(cells + RESET)
    return "\n".join(lines)


def enable_escape_codes() -> None:
    """cmd.exe and PowerShell's console understand colours once this has run once."""
    if os.name == "nt":
        os.system("")
