# mk_config — the board's settings: config.json (written by a person) and the remote
# settings that arrive on the retained `cmd` topic (written by the device).
#
#   cfg = mk_config.load("/config.json", "/state/remote")
#   if not cfg["ok"]:            # missing, broken or incomplete: run "not configured"
#       nag = mk_config.Nag(cfg["problems"], time.ticks_ms, print)
#       ... in the main loop: nag.poll()   # logs the problems once a minute
#   changed, refused = mk_config.apply_remote(cfg, payload_of_cmd, "/state/remote")
#
# Why two files:
# - config.json is typed by a person (over USB, with Thonny) and holds the Wi-Fi password and
#   the device's broker password. The device NEVER rewrites it: a power cut while rewriting
#   could lose the Wi-Fi settings, and then nobody can reach the board remotely.
# - Remote settings (interval_s, thresholds) are kept in a small state file of their own,
#   saved with mk_store.write_atomic: after a power cut there is the old or the new file,
#   never a broken one. They override the app settings of config.json.
#
# Why nothing here raises on bad input: a device that crashes on a typo reboots in a loop.
# A device with a problem keeps running in a "not configured" state, says what is wrong once
# a minute (USB console, and the status message when it can connect) and picks up the fixed
# file at the next start. There is no setup mode (no access point waiting for a human): after
# a power cut the board must come back by itself.
#
# Every problem is one line, Japanese first, then English:
#   "設定 wifi.ssid がありません / config: wifi.ssid is missing"
#
# MicroPython-safe on purpose: only `json`/`os`, plain dicts, %-formatting, no f-strings.

import json
import os

import mk_store

MAX_FILE = 2048  # config.json larger than this is refused (a board has little memory)
MAX_REMOTE = 512  # bytes of the remote settings file
MINUTE_MS = 60000

# Settings a remote `cmd` may change: name -> (kind, lowest, highest).
# kind "i" = whole number, "n" = any number. Anything not listed here is refused, and Wi-Fi,
# broker and device credentials are never listed: a wrong remote value there would cut the
# device off for good (only a person with a USB cable could fix it).
SETTINGS = {
    "interval_s": ("i", 10, 86400),  # how often to measure / send
    "status_s": ("i", 60, 86400),  # how often to send the status message
    "alarm_after_s": ("i", 5, 3600),  # printer: paper left this long -> buzzer
    "on_threshold": ("i", 0, 65535),  # printer: LDR difference meaning "paper"
    "off_threshold": ("i", 0, 65535),  # printer: ... meaning "empty" again
    "debounce_ms": ("i", 0, 60000),
    "max_jump_cm": ("n", 1, 100),  # snow: a bigger jump is not believed at once
    "change_cm": ("n", 0.5, 100),  # snow: change that makes an event
    "noise_cm": ("n", 0, 50),
    "pings": ("i", 1, 31),  # snow: pings per measurement (median)
    "deep_sleep": ("b", False, True),  # snow on ESP32 + battery: power down between measurements
}

# Filled in when config.json does not say. Required fields default to "" and are reported.
DEFAULTS = {
    "wifi": {"ssid": "", "password": "", "country": "JP"},  # JP: channels 12-13 allowed
    # An optional "ca" names the file of the CA certificate(s) the broker's certificate must
    # come from (DER, written by `machikit flash --ca`); without it: encrypted, not checked.
    "broker": {"host": "", "port": 8883, "tls": True},
    "device": {"town": "", "name": "", "user": "", "password": ""},
    "app": {"name": "", "settings": {"interval_s": 60, "status_s": 300}},
}

# (section, key, kind) for the fixed part; kind: "s" text, "p" port, "b" true/false.
_REQUIRED = (
    ("wifi", "ssid"), ("broker", "host"), ("device", "town"), ("device", "name"),
    ("device", "user"), ("device", "password"), ("app", "name"),
)
_TYPES = (
    ("wifi", "ssid", "s"), ("wifi", "password", "s"), ("wifi", "country", "s"),
    ("broker", "host", "s"), ("broker", "port", "p"), ("broker", "tls", "b"),
    ("device", "town", "s"), ("device", "name", "s"), ("device", "user", "s"),
    ("device", "password", "s"), ("app", "name", "s"),
)


def problem(ja, en):
    """One problem line, both languages (a town's staff member and a vendor both read it)."""
    return "%s / config: %s" % (ja, en)


def _copy(d):
    # A two-level copy of DEFAULTS, so a loaded config never changes the defaults.
    out = {}
    for k in d:
        v = d[k]
        out[k] = _copy(v) if isinstance(v, dict) else v
    return out


def _is_name(text):
    # Town and device names as the contract wants them in a topic: a-z 0-9 - _, 1-32 chars.
    if not isinstance(text, str) or not 1 <= len(text) <= 32:
        return False
    for ch in text:
        if not (("a" <= ch <= "z") or ("0" <= ch <= "9") or ch in "-_"):
            return False
    return True


def _is_number(v, kind):
    # bool is an int in Python: `true` must not pass as 1.
    if isinstance(v, bool):
        return False
    if kind == "i":
        return isinstance(v, int)
    return isinstance(v, (int, float)) and v == v  # v == v: not NaN


def check_setting(name, value, where="app.settings."):
    """None if `value` is allowed for setting `name`, else one problem line."""
    spec = SETTINGS.get(name)
    full = where + name
    if spec is None:
        return problem("設定 %s は知らない項目です" % full, "%s is not a known setting" % full)
    kind, low, high = spec
    if kind == "b":
        if isinstance(value, bool):
            return None
        return problem("設定 %s は true か false にしてください" % full,
                       "%s must be true or false" % full)
    if not _is_number(value, kind):
        if kind == "i":
            return problem("設定 %s の型が違います（整数にしてください）" % full,
                           "%s must be a whole number" % full)
        return problem("設定 %s の型が違います（数値にしてください）" % full,
                       "%s must be a number" % full)
    if not low <= value <= high:
        return problem("設定 %s が範囲外です（%s〜%s）" % (full, low, high),
                       "%s must be between %s and %s" % (full, low, high))
    return None


def validate(cfg):
    """A list of problem lines for a config dict (empty: all is well)."""
    out = []
    for section, key in _REQUIRED:
        v = cfg[section].get(key)
        if v is None or v == "":
            out.append(problem("設定 %s.%s がありません" % (section, key),
                               "%s.%s is missing" % (section, key)))
    for section, key, kind in _TYPES:
        v = cfg[section].get(key)
        full = "%s.%s" % (section, key)
        if kind == "s" and not isinstance(v, str):
            out.append(problem("設定 %s の型が違います（文字列にしてください）" % full,
                               "%s must be text" % full))
        elif kind == "b" and not isinstance(v, bool):
            out.append(problem("設定 %s は true か false にしてください" % full,
                               "%s must be true or false" % full))
        elif kind == "p":
            if not _is_number(v, "i"):
                out.append(problem("設定 %s の型が違います（整数にしてください）" % full,
                                   "%s must be a whole number" % full))
            elif not 1 <= v <= 65535:
                out.append(problem("設定 %s が範囲外です（1〜65535）" % full,
                                   "%s must be between 1 and 65535" % full))
    ssid = cfg["wifi"].get("ssid")
    if isinstance(ssid, str) and len(ssid.encode()) > 32:
        out.append(problem("設定 wifi.ssid が長すぎます（32 バイトまで）",
                           "wifi.ssid is longer than 32 bytes"))
    for key in ("town", "name"):
        v = cfg["device"].get(key)
        if isinstance(v, str) and v and not _is_name(v):
            out.append(problem(
                "設定 device.%s は英小文字・数字・-・_ で 32 文字までにしてください" % key,
                "device.%s must be a-z, 0-9, '-' or '_', up to 32 characters" % key))
    settings = cfg["app"].get("settings")
    if not isinstance(settings, dict):
        out.append(problem("設定 app.settings の型が違います（{...} にしてください）",
                           "app.settings must be an object"))
    else:
        for name in settings:
            # Unknown app settings are allowed in the file (an app may have its own);
            # known ones must be in range.
            if name in SETTINGS:
                p = check_setting(name, settings[name])
                if p:
                    out.append(p)
    return out


def _read_json(path):
    # (data, problem): the parsed file, or None and why not. Never raises.
    try:
        size = os.stat(path)[6]
    except OSError:
        return None, problem("設定ファイル %s がありません" % path, "file %s is missing" % path)
    if size > MAX_FILE:
        return None, problem("設定ファイル %s が大きすぎます（%d バイトまで）" % (path, MAX_FILE),
                             "file %s is larger than %d bytes" % (path, MAX_FILE))
    try:
        f = open(path, "rb")
        try:
            raw = f.read(size)  # not read(MAX_FILE): that reserves 2 KB every time
        finally:
            f.close()
        raw = raw.strip()
        if not raw.endswith(b"}"):
            # MicroPython's json takes "{" or a cut-off file as a (partial) object; a file
            # cut short by a save from a PC or a bad USB copy must be called broken.
            raise ValueError("truncated")
        data = json.loads(raw.decode())
    except (OSError, ValueError, UnicodeError):
        # MicroPython's json raises ValueError; a half-saved or mistyped file lands here.
        return None, problem("設定ファイル %s が読めません（JSON の形が違います）" % path,
                             "file %s is not valid JSON" % path)
    if not isinstance(data, dict):
        return None, problem("設定ファイル %s の中身が {...} ではありません" % path,
                             "file %s is not a JSON object" % path)
    return data, None


def _merge(cfg, data, out):
    # Copy the sections of config.json over the defaults; a section that is not an object
    # is reported and the defaults stay.
    for section in DEFAULTS:
        v = data.get(section)
        if v is None:
            continue
        if not isinstance(v, dict):
            out.append(problem("設定 %s の型が違います（{...} にしてください）" % section,
                               "%s must be an object" % section))
            continue
        for key in v:
            if section == "app" and key == "settings" and isinstance(v[key], dict):
                for name in v[key]:
                    cfg["app"]["settings"][name] = v[key][name]
            else:
                cfg[section][key] = v[key]


def read_remote(path):
    """The saved remote settings (a dict), {} if none. A damaged file counts as none.

    `<path>.new` is tried first: if it is whole (its CRC matches), the power went off after
    it was written and before the rename, so it is the newer one. A torn `.new` fails its
    CRC and the old file is used.
    """
    for name in (path + ".new", path):
        text = mk_store.read_checked(name, MAX_REMOTE)
        if text is None:
            continue
        try:
            data = json.loads(text)
        except ValueError:
            continue
        if isinstance(data, dict):
            return data
    return {}


def load(path, remote_path=None):
    """config.json with defaults filled in, and the saved remote settings on top. Never raises.

    The result has three extra keys:
      "ok"        True when the device can run its app; False: "not configured"
      "problems"  the problem lines (empty when ok)
      "base"      app settings as config.json has them, before remote settings
    """
    cfg = _copy(DEFAULTS)
    problems = []
    data, p = _read_json(path)
    if p:
        problems.append(p)
    else:
        _merge(cfg, data, problems)
        problems.extend(validate(cfg))
    ca = cfg["broker"].get("ca")
    if not problems and ca is not None:
        if isinstance(ca, str) and ca:
            import mk_ca  # only on boards that check their broker: less to load elsewhere

            cfg["broker"]["cadata"], why = mk_ca.read_ca(ca)
            p = problem(*why) if why else None
        else:
            p = problem("設定 broker.ca はファイル名にしてください", "broker.ca must be a file name")
        if p:
            problems.append(p)
    ok = not problems
    # What config.json says, kept so a remote `null` can go back to it.
    base = cfg["app"]["settings"]
    cfg["base"] = _copy(base) if isinstance(base, dict) else {}
    if remote_path:
        remote = read_remote(remote_path)
        settings = cfg["app"]["settings"]
        if isinstance(settings, dict):
            for name in remote:
                # Checked again: the file could be from an older firmware with other ranges.
                if check_setting(name, remote[name]) is None:
                    settings[name] = remote[name]
    cfg["ok"] = ok
    cfg["problems"] = problems
    return cfg


def apply_remote(cfg, cmd, remote_path):
    """Take the settings of a `cmd` message: {"v":1,"set":{"interval_s":60}}.

    `cmd` is the payload (bytes or str) or the decoded dict. Only names in SETTINGS with an
    allowed value are taken; a value of null returns that setting to config.json's value.
    Everything else is refused with a problem line, and nothing of a refused name changes.

    Returns (changed, refused): changed = {name: new value} (None = back to config.json),
    refused = problem lines. Writes the remote file only when something changed: the
    retained `cmd` arrives again at every reconnect, and flash wears out.
    """
    refused = []
    if not isinstance(cmd, dict):
        try:
            if isinstance(cmd, (bytes, bytearray)):
                cmd = cmd.decode()
            cmd = json.loads(cmd)
        except (ValueError, UnicodeError, TypeError):
            return {}, [problem("cmd が JSON ではありません", "cmd is not JSON")]
    new = cmd.get("set") if isinstance(cmd, dict) else None
    if not isinstance(cmd, dict) or cmd.get("v") != 1 or not isinstance(new, dict):
        return {}, [problem("cmd の形が違います（{\"v\":1,\"set\":{...}}）",
                            "cmd must look like {\"v\":1,\"set\":{...}}")]
    saved = read_remote(remote_path)
    settings = cfg["app"]["settings"]
    if not isinstance(settings, dict):  # a broken config.json: still no crash
        settings = cfg["app"]["settings"] = {}
    changed = {}  # type: dict
    for name in new:
        value = new[name]
        if name not in SETTINGS:
            # Wi-Fi, broker, device credentials and anything unknown: never from remote.
            refused.append(problem("cmd の %s は遠隔では変えられません" % name,
                                   "cmd may not change %s" % name))
            continue
        if value is None:
            if name in saved:
                del saved[name]
                changed[name] = None
            continue
        p = check_setting(name, value, "cmd.set.")
        if p:
            refused.append(p)
            continue
        if saved.get(name) != value or settings.get(name) != value:
            saved[name] = value
            changed[name] = value
    if changed:
        mk_store.write_atomic(remote_path, json.dumps(saved))
        for name in changed:
            if changed[name] is None:
                # Back to what config.json says (or to no value at all).
                base = cfg.get("base", {})
                if name in base:
                    settings[name] = base[name]
                else:
                    settings.pop(name, None)
            else:
                settings[name] = changed[name]
    return changed, refused


class Nag:
    """Log the problems now and then once a minute, so someone at the USB console (or the
    status message) sees why the device does nothing, without flooding the log."""

    def __init__(self, problems, ticks_ms_fn, log_fn, every_ms=MINUTE_MS):
        self.problems = problems
        self.ticks_ms = ticks_ms_fn
        self.log = log_fn
        self.every_ms = every_ms
        self._last = None

    def poll(self):
        """Call from the main loop. Returns True when it logged."""
        now = self.ticks_ms()
        if self._last is not None and _ticks_diff(now, self._last) < self.every_ms:
            return False
        self._last = now
        self.log("まだ設定されていません / not configured (%d)" % len(self.problems))
        for p in self.problems:
            self.log(p)
        return True


_PERIOD = 1 << 30  # MicroPython's ticks_ms() wraps at 2**30 ms (about 12.4 days)


def _ticks_diff(a, b):
    # time.ticks_diff(a, b) of MicroPython, in plain Python so fake clocks work too.
    half = _PERIOD >> 1
    return ((a - b + half) & (_PERIOD - 1)) - half
