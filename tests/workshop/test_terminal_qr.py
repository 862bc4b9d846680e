"""The QR code `workshop serve` draws in the terminal, read back by a real QR decoder
(zxing-cpp) from a picture of what the terminal shows: escape codes and spaces only."""

import re

import pytest
import zxingcpp
from PIL import Image

from machikit.workshop.terminal_qr import DARK, LIGHT, RESET, render

CELL = re.compile(r"\x1b\[(40|47)m  ")


def screenshot(drawn: str, pixels: int = 4) -> Image.Image:
    """Paint what a terminal would: each two-space cell is one square module."""
    rows = [[code == "40" for code in CELL.findall(line)] for line in drawn.splitlines()]
    assert rows and all(len(row) == len(rows[0]) for row in rows), "a ragged QR code"
    image = Image.new("L", (len(rows[0]) * pixels, len(rows) * pixels), 255)
    for y, row in enumerate(rows):
        for x, dark in enumerate(row):
            if dark:
                image.paste(0, (x * pixels, y * pixels, (x + 1) * pixels, (y + 1) * pixels))
    return image


@pytest.mark.parametrize("url", ["http://192.168.10.2:8080/",
                                 "http://10.0.0.15:8080/#snow-01",
                                 "http://172.16.254.254:18080/"])
def test_a_phone_reads_the_terminal_qr_code(url: str) -> None:
    drawn = render(url)
    found = zxingcpp.read_barcodes(screenshot(drawn))
    assert [code.text for code in found] == [url]
    assert [code.format for code in found] == [zxingcpp.BarcodeFormat.QRCode]


def test_only_spaces_and_colours_so_any_console_shows_it() -> None:
    """No block characters: a Japanese Windows console (cp932) cannot print them."""
    drawn = render("http://192.168.10.2:8080/")
    plain = drawn.replace(DARK, "").replace(LIGHT, "").replace(RESET, "")
    assert set(plain) == {" ", "\n"}
    drawn.encode("cp932")
    assert all(line.endswith(RESET) for line in drawn.splitlines())  # no colour left behind
