"""Printable labels, one per device: who it belongs to, its name, and a QR code of its map page.

A4 with a 2 × 5 grid, so ten boards per sheet (common label sheets are A4 2 × 5).
Passwords are never printed: they go into the board only, so a label lying
on a table cannot be used to publish as that device.
PDF only: a PNG would need Pillow, which the workshop laptop does not get.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reportlab.graphics import renderPDF
from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas

JAPANESE = "HeiseiKakuGo-W5"  # built into every PDF reader: no font file to ship
COLUMNS, ROWS = 2, 5
PER_PAGE = COLUMNS * ROWS
MARGIN = 10 * mm
QR_SIZE = 36 * mm


@dataclass(frozen=True)
class Label:
    participant: str
    device: str
    town: str
    app: str
    user: str
    wifi_ssid: str
    url: str


def device_url(map_url: str, device: str) -> str:
    """The map page shows and opens the device named after '#' (collector/web/map/panel.js)."""
    return map_url.split("#")[0] + "#" + device


def write_labels(path: Path, labels: Sequence[Label], compress: bool = True) -> int:
    """Write the PDF; returns the number of pages."""
    if JAPANESE not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(JAPANESE))
    canvas = Canvas(str(path), pagesize=A4, pageCompression=1 if compress else 0)
    canvas.setTitle("machikit workshop labels")
    pages = 0
    for start in range(0, len(labels), PER_PAGE):
        for index, label in enumerate(labels[start:start + PER_PAGE]):
            _draw(canvas, label, *_cell(index))
        canvas.showPage()
        pages += 1
    canvas.save()
    return pages


def _cell(index: int) -> tuple[float, float, float, float]:
    """(x, y, width, height) of the index-th label, filled row by row from the top left."""
    width = (A4[0] - 2 * MARGIN) / COLUMNS
    height = (A4[1] - 2 * MARGIN) / ROWS
    column, row = index % COLUMNS, index // COLUMNS
    return MARGIN + column * width, A4[1] - MARGIN - (row + 1) * height, width, height


def _draw(canvas: Canvas, label: Label, x: float, y: float, width: float, height: float) -> None:
    canvas.setLineWidth(0.3)
    canvas.setDash(2, 2)  # a cutting guide, light enough to vanish on label paper
    canvas.rect(x, y, width, height)
    canvas.setDash()
    left, top = x + 4 * mm, y + height - 4 * mm
    canvas.setFont(JAPANESE, 13)
    canvas.drawString(left, top - 5 * mm, label.participant)
    canvas.setFont("Helvetica-Bold", 15)
    canvas.drawString(left, top - 12 * mm, label.device)
    lines = [("町", "town", label.town), ("アプリ", "app", label.app),
             ("ユーザー", "user", label.user), ("Wi-Fi", "SSID", label.wifi_ssid)]
    for number, (ja, en, value) in enumerate(lines):
        line_y = top - (18 + 5 * number) * mm
        canvas.setFont(JAPANESE, 7)
        canvas.drawString(left, line_y, f"{ja}/{en}")
        canvas.setFont("Helvetica", 9)
        canvas.drawString(left + 17 * mm, line_y, value)
    canvas.setFont("Helvetica", 6)
    canvas.drawString(left, y + 3 * mm, label.url)
    _draw_qr(canvas, label.url, x + width - QR_SIZE - 2 * mm, y + (height - QR_SIZE) / 2)


def _draw_qr(canvas: Canvas, url: str, x: float, y: float) -> None:
    widget = QrCodeWidget(url, barLevel="M")
    left, bottom, right, top = widget.getBounds()
    drawing = Drawing(QR_SIZE, QR_SIZE,
                      transform=[QR_SIZE / (right - left), 0, 0, QR_SIZE / (top - bottom), 0, 0])
    drawing.add(widget)
    renderPDF.draw(drawing, canvas, x, y)
