"""The label PDF: one A4 page per ten devices, every device's name on it, no passwords.

reportlab compresses page streams by default, so the tests write them uncompressed
(compress=False, the only difference) and search the PDF bytes themselves."""

import re
from pathlib import Path

import pytest

from machikit.workshop import labels as labels_module
from machikit.workshop.labels import Label, device_url, write_labels


def make(count: int) -> list[Label]:
    return [Label("山田 太郎", f"snow-{i:02d}", "testtown", "snow", f"testtown.snow-{i:02d}",
                  "machikit-ws", device_url("http://192.168.50.2:8080/", f"snow-{i:02d}"))
            for i in range(1, count + 1)]


def pages(pdf: bytes) -> int:
    return len(re.findall(rb"/Type /Page[^s]", pdf))


@pytest.mark.parametrize(("count", "expected"), [(1, 1), (10, 1), (11, 2), (25, 3)])
def test_one_page_per_ten_devices(tmp_path: Path, count: int, expected: int) -> None:
    path = tmp_path / "labels.pdf"
    assert write_labels(path, make(count), compress=False) == expected
    pdf = path.read_bytes()
    assert pdf.startswith(b"%PDF") and pages(pdf) == expected


def test_every_device_name_user_and_url_is_printed(tmp_path: Path) -> None:
    path = tmp_path / "labels.pdf"
    write_labels(path, make(12), compress=False)
    pdf = path.read_bytes()
    for i in range(1, 13):
        assert f"(snow-{i:02d}) Tj".encode() in pdf
        assert f"(testtown.snow-{i:02d}) Tj".encode() in pdf
        assert f"(http://192.168.50.2:8080/#snow-{i:02d}) Tj".encode() in pdf
    assert b"(machikit-ws) Tj" in pdf
    assert b"/HeiseiKakuGo-W5" in pdf  # the Japanese names use the built-in CID font


def test_japanese_name_and_qr_code_are_drawn(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The CID font encodes Japanese in a way a byte search cannot read back, and a QR
    code is only squares: record what the canvas was asked to draw instead."""
    drawn: list[str] = []
    qr_values: list[str] = []
    real_draw, real_qr = labels_module.Canvas.drawString, labels_module.QrCodeWidget

    def draw_string(self, x, y, text, *args, **kwargs):  # type: ignore[no-untyped-def]
        drawn.append(text)
        return real_draw(self, x, y, text, *args, **kwargs)

    def qr(value, **kwargs):  # type: ignore[no-untyped-def]
        qr_values.append(value)
        return real_qr(value, **kwargs)

    monkeypatch.setattr(labels_module.Canvas, "drawString", draw_string)
    monkeypatch.setattr(labels_module, "QrCodeWidget", qr)
    write_labels(tmp_path / "labels.pdf", make(2))
    assert drawn.count("山田 太郎") == 2
    assert qr_values == ["http://192.168.50.2:8080/#snow-01", "http://192.168.50.2:8080/#snow-02"]


def test_passwords_are_not_on_labels() -> None:
    # Label has no password field at all: nothing can print it by mistake.
    assert "password" not in Label.__dataclass_fields__


def test_device_url_replaces_an_old_fragment() -> None:
    assert device_url("https://map.example.jp/#old", "bus-01") == "https://map.example.jp/#bus-01"
