# A fake `network` for the unix port (which has no Wi-Fi): WLAN joins at once, because the
# unix port already has the host's network. MK_FAKE_WIFI=down keeps it from ever joining.
import os

STA_IF = 0
AP_IF = 1
STAT_GOT_IP = 3
_country = ["XX"]


def country(code=None):
    if code is None:
        return _country[0]
    _country[0] = code
    print(f"fake network: country {code}")


class WLAN:
    def __init__(self, interface=STA_IF):
        self._active = False
        self._joined = False

    def active(self, on=None):
        if on is None:
            return self._active
        self._active = bool(on)

    def connect(self, ssid, password=None):
        self._joined = self._active and os.getenv("MK_FAKE_WIFI") != "down"

    def disconnect(self):
        self._joined = False

    def isconnected(self):
        return self._joined

    def status(self, what=None):
        if what == "rssi":
            return -61
        return STAT_GOT_IP if self._joined else 0

    def ifconfig(self):
        return ("192.0.2.10", "255.255.255.0", "192.0.2.1", "192.0.2.1")
