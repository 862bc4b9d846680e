# mk_wifi — joining the Wi-Fi without ever blocking the main loop.
#
#   wifi = mk_wifi.Wifi(network, cfg["wifi"], print)
#   ... in the main loop:  online = wifi.poll(time.ticks_ms())
#
# Why not the usual "while not wlan.isconnected(): sleep" loop: the watchdog (8.3 s on a
# Pico W) is fed only from the main loop, and a join can take 10 s or never finish (the
# router is off after a power cut). So poll() only looks at the state and, when it is time,
# starts a join with wlan.connect() — which returns at once on the Pico W and the ESP32 —
# and comes back later to see how it went. A join that has not worked after JOIN_MS is
# given up and tried again after a wait that doubles (10 s, 20 s ... 5 min), so the board
# keeps measuring (into its flash buffer) while the network is away.
#
# network.country("JP") before the radio starts: Japan allows channels 1-13; a board left
# at the default "world" setting may not see an access point on channel 12 or 13.
#
# MicroPython-safe: plain class, %-formatting, no f-strings.

JOIN_MS = 15000  # a join that takes longer than this is given up and retried
RETRY_MS = 10000  # first wait after a failed join ...
MAX_RETRY_MS = 300000  # ... doubling up to 5 minutes
_PERIOD = 1 << 30  # ticks_ms() wraps here


def _diff(a, b):
    half = _PERIOD >> 1
    return ((a - b + half) & (_PERIOD - 1)) - half


class Wifi:
    """The station interface (network.WLAN(STA_IF)): poll() joins, rejoins, never waits."""

    def __init__(self, network, settings, log):
        self.log = log
        self.ssid = settings.get("ssid", "")
        self.password = settings.get("password", "")
        country = settings.get("country") or "JP"
        if hasattr(network, "country"):  # Pico W and ESP32 (1.21+); must be set first
            try:
                network.country(country)
            except Exception as err:  # an unknown code must not stop the board
                log("Wi-Fi: 国コード %s を設定できません / cannot set country %s: %r"
                    % (country, country, err))
        self.wlan = network.WLAN(network.STA_IF)
        self.wlan.active(True)
        self.joining_since = None  # ticks_ms when the current join started
        self.next_try = None  # ticks_ms before which we do not start a join
        self.failures = 0
        self.up = False

    def rssi(self):
        """Signal strength in dBm, or None (for the status message)."""
        try:
            return self.wlan.status("rssi")
        except Exception:
            return None

    def poll(self, now):
        """True while joined. Starts or times out a join when due; returns at once."""
        if self.wlan.isconnected():
            if not self.up:
                self.up = True
                self.failures = 0
                self.joining_since = None
                self.log("Wi-Fi 接続 / Wi-Fi up: %s %s dBm"
                         % (self.wlan.ifconfig()[0], self.rssi()))
            return True
        if self.up:
            self.up = False
            self.log("Wi-Fi 切断 / Wi-Fi lost, joining again")
        if self.joining_since is not None:
            if _diff(now, self.joining_since) < JOIN_MS:
                return False  # still joining: look again next round
            self.failures += 1
            wait = min(MAX_RETRY_MS, RETRY_MS << min(self.failures - 1, 10))
            self.next_try = now + wait
            self.joining_since = None
            self.log("Wi-Fi: %s につながりません（%d 秒後に再試行）/ cannot join %s "
                     "(status %s), retry in %d s"
                     % (self.ssid, wait // 1000, self.ssid, self._status(), wait // 1000))
            try:
                self.wlan.disconnect()  # stop the radio's own retries before the next join
            except Exception:
                pass
            return False
        if self.next_try is not None and _diff(now, self.next_try) < 0:
            return False
        self.joining_since = now
        self.log("Wi-Fi: %s に接続中 / joining %s" % (self.ssid, self.ssid))
        try:
            self.wlan.connect(self.ssid, self.password)
        except Exception as err:  # e.g. OSError on a radio still busy: counts as a failed try
            self.log("Wi-Fi: connect() %r" % (err,))
        return False

    def _status(self):
        try:
            return self.wlan.status()
        except Exception:
            return "?"
