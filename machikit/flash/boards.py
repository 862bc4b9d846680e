"""Which serial ports are boards, by their USB vendor/product id (VID:PID)."""

import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["pico", "esp32", "unknown"]

# A Pico W that runs MicroPython shows as 2E8A:0005. In its boot ROM (BOOTSEL held) it is
# 2E8A:0003 and a USB drive, not a serial port: it never appears in this list, which is why
# "no port" must also suggest "is MicroPython on it?".
PICO_MICROPYTHON = (0x2E8A, 0x0005)
PICO_BOOT_ROM = (0x2E8A, 0x0003)
# ESP32 dev boards talk through a USB-UART bridge chip (the driver Windows may lack);
# the S3 has USB built in.
ESP32_IDS = {
    (0x10C4, 0xEA60),  # Silicon Labs CP210x
    (0x1A86, 0x7523),  # WCH CH340
    (0x1A86, 0x55D4),  # WCH CH9102
    (0x303A, 0x1001),  # Espressif ESP32-S3 native USB
}


@dataclass(frozen=True)
class BoardPort:
    device: str  # what to pass to --port: COM3, /dev/ttyACM0
    vid: int | None
    pid: int | None
    serial_number: str | None  # tells boards apart in workshop mode
    kind: Kind


def classify(vid: int | None, pid: int | None) -> Kind:
    if (vid, pid) == PICO_MICROPYTHON:
        return "pico"
    if (vid, pid) in ESP32_IDS:
        return "esp32"
    return "unknown"


def find_boards(include_unknown: bool = False) -> list[BoardPort]:
    """The serial ports that look like boards; others (Bluetooth, modems) only on request."""
    from serial.tools import list_ports  # pyserial: only the workshop extra installs it

    found = []
    for port in list_ports.comports():
        kind = classify(port.vid, port.pid)
        if kind != "unknown" or include_unknown:
            found.append(BoardPort(port.device, port.vid, port.pid, port.serial_number, kind))
    return sorted(found, key=lambda b: port_order(b.device))


def port_order(device: str) -> list[str | int]:
    """COM3, COM4, COM10 in that order (Windows), not COM10 first as text sorts them;
    /dev/ttyACM0 before /dev/ttyACM1 before /dev/ttyUSB0 as before."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", device)]
