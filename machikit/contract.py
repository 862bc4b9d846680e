# machikit message contract v1 — topics and payloads, defined once.
#
# This file runs in three places: on a Pico W / ESP32 (MicroPython), on a
# Raspberry Pi and in the collector (CPython). So it only uses what both
# interpreters have: plain functions, dicts, tuples and json. No typing,
# dataclasses, f-strings with nested quotes or regular expressions.
# The full description with examples is docs/protocol.md.

import json

VERSION = 1
ROOT = "machikit/v1"

POSITION = "pos"
READING = "reading"
EVENT = "event"
STATUS = "status"
BATCH = "batch"
COMMAND = "cmd"
DATA_CHANNELS = (POSITION, READING, EVENT)
CHANNELS = (POSITION, READING, EVENT, STATUS, BATCH, COMMAND)

MAX_PAYLOAD = 4096  # bytes, one message
MAX_BATCH_PAYLOAD = 65536  # bytes, a backlog batch
MAX_BATCH_ITEMS = 200
MAX_TEXT = 200  # characters in an event's free text

# A synced clock cannot say a time before 2020: such a clock is broken.
MIN_SYNCED_TIME_MS = 1577836800000
# Devices may run a little ahead of the collector; more than this is refused.
MAX_FUTURE_SKEW_MS = 5 * 60 * 1000
MAX_SEQ = 2**53 - 1  # the largest integer JSON readers agree on

# Units a reading may use, with the values a real sensor can produce.
UNITS = {
    "cm": (-1000, 100000),
    "mm": (-10000, 1000000),
    "m": (-1000, 100000),
    "degC": (-90, 90),
    "%": (0, 100),
    "V": (0, 100),
    "lux": (0, 200000),
    "hPa": (300, 1100),
    "m/s": (0, 150),
    "ppm": (0, 100000),
    "dBm": (-150, 30),
    "s": (0, 10**9),
    "count": (0, 10**9),
}
QUALITIES = ("good", "reference", "suspect")  # reference = 参考値 (not certified)
STATES = ("online", "offline")


class ContractError(ValueError):
    """A message that breaks the contract. `reason` is a short stable code."""

    item = None  # for a bad item of a batch: the item itself

    def __init__(self, reason, detail=""):
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


# --- names and topics -----------------------------------------------------

def _is_name(text, extra, first_digit_ok):
    if not isinstance(text, str) or not 1 <= len(text) <= 32:
        return False
    if not (text[0].isalpha() or (first_digit_ok and text[0].isdigit())):
        return False
    for ch in text:
        if not (("a" <= ch <= "z") or ("0" <= ch <= "9") or ch in extra):
            return False
    return True


def is_device_name(text):
    """Towns and devices: a-z, 0-9, '-' and '_', up to 32, e.g. 'bus-01'."""
    return _is_name(text, "-_", True)


def is_field_name(text):
    """Sensor and event names: a-z, 0-9 and '_', starting with a letter."""
    return _is_name(text, "_", False)


def topic(town, device, channel):
    if not (is_device_name(town) and is_device_name(device)):
        raise ContractError("bad_topic", "town and device must be names like 'bus-01'")
    if channel not in CHANNELS:
        raise ContractError("unknown_channel", channel)
    return ROOT + "/" + town + "/" + device + "/" + channel


def subscription(town="+"):
    """The topic filter for every device channel of one town (or all towns)."""
    return ROOT + "/" + town + "/+/+"


def parse_topic(name):
    """'machikit/v1/<town>/<device>/<channel>' -> (town, device, channel)."""
    parts = name.split("/")
    if len(parts) != 5 or parts[0] + "/" + parts[1] != ROOT:
        raise ContractError("bad_topic", name[:100])
    town, device, channel = parts[2], parts[3], parts[4]
    if not (is_device_name(town) and is_device_name(device)):
        raise ContractError("bad_topic", name[:100])
    if channel not in CHANNELS:
        raise ContractError("unknown_channel", channel[:32])
    return town, device, channel


# --- building messages (devices) -----------------------------------------

def _stamp(seq, t, boot, up):
    """Start a message: version, sequence and clock. t=None: clock not synced yet."""
    msg = {"v": VERSION}
    if seq is not None:
        msg["seq"] = seq
    if t is None:
        msg["sync"] = False
    else:
        msg["t"] = t
    if boot is not None:
        msg["boot"] = boot
    if up is not None:
        msg["up"] = up
    return msg


def _put(msg, key, value):
    if value is not None:
        msg[key] = value


def position(seq, t, lat, lon, alt=None, speed=None, heading=None, sats=None,
             hdop=None, boot=None, up=None):
    msg = _stamp(seq, t, boot, up)
    msg["lat"] = lat
    msg["lon"] = lon
    _put(msg, "alt", alt)
    _put(msg, "speed", speed)
    _put(msg, "heading", heading)
    _put(msg, "sats", sats)
    _put(msg, "hdop", hdop)
    return msg


def reading(seq, t, sensor, value, unit, quality=None, boot=None, up=None):
    msg = _stamp(seq, t, boot, up)
    msg["sensor"] = sensor
    msg["value"] = value
    msg["unit"] = unit
    _put(msg, "quality", quality)
    return msg


def event(seq, t, name, value=None, unit=None, text=None, boot=None, up=None):
    msg = _stamp(seq, t, boot, up)
    msg["event"] = name
    _put(msg, "value", value)
    _put(msg, "unit", unit)
    _put(msg, "text", text)
    return msg


def status(state, fw=None, t=None, boot=None, up=None, **health):
    """Retained availability. Health keys: rssi, buffered, dropped, heap, battery, reset;
    a GPS tracker adds sats and hdop (its receiver's state now)."""
    msg = {"v": VERSION, "state": state}
    _put(msg, "fw", fw)
    _put(msg, "t", t)
    _put(msg, "boot", boot)
    _put(msg, "up", up)
    for key in health:
        _put(msg, key, health[key])
    return msg


def offline_will():
    """The last will: the broker publishes it (retained) when a device vanishes."""
    return status("offline")


def batch(items):
    """items: a list of (channel, message) from the offline buffer, oldest first."""
    out = []
    for channel, msg in items:
        item = dict(msg)
        item["ch"] = channel
        out.append(item)
    return {"v": VERSION, "items": out}


def command(settings):
    """Settings sent to a device on its retained command topic, e.g. {'interval_s': 60}."""
    return {"v": VERSION, "set": settings}


def encode(msg):
    return json.dumps(msg, separators=(",", ":")).encode()


# --- checking messages (collector, and devices for commands) --------------

def _is_int(x):
    return type(x) is int  # bool is a subclass of int in CPython, not its type


def _is_number(x):
    kind = type(x)
    if kind is int:
        return True
    return kind is float and x - x == 0  # false for inf and nan


def _number(msg, key, low, high, required, integer=False):
    if key not in msg or msg[key] is None:
        if required:
            raise ContractError("missing_field", key)
        return
    value = msg[key]
    if not (_is_int(value) if integer else _is_number(value)):
        kind = "an integer" if integer else "a number"
        raise ContractError("bad_type", key + " must be " + kind)
    if not low <= value <= high:
        raise ContractError("out_of_range", "%s=%s not in %s..%s" % (key, value, low, high))


def _text(msg, key, limit, required):
    if key not in msg or msg[key] is None:
        if required:
            raise ContractError("missing_field", key)
        return
    if not isinstance(msg[key], str):
        raise ContractError("bad_type", key + " must be text")
    if len(msg[key]) > limit:
        raise ContractError("out_of_range", key + " longer than %d" % limit)
    if "\x00" in msg[key]:  # databases cannot store NUL inside text
        raise ContractError("bad_type", key + " contains a NUL character")


def _choice(msg, key, allowed, required):
    _text(msg, key, 32, required)
    if key in msg and msg[key] is not None and msg[key] not in allowed:
        choices = ",".join(allowed)
        raise ContractError("out_of_range", "%s=%s not one of %s" % (key, msg[key], choices))


def _check_version(msg):
    if not isinstance(msg, dict):
        raise ContractError("not_object", "payload must be a JSON object")
    if "v" not in msg:
        raise ContractError("missing_field", "v")
    if msg["v"] != VERSION:
        raise ContractError("bad_version", "v=%s, this collector reads v%d" % (msg["v"], VERSION))


def _check_clock(msg, now_ms):
    """Synced: 't' is Unix time in ms. Unsynced: 'boot' and 'up' let the collector estimate it."""
    sync = msg.get("sync", True)
    if not isinstance(sync, bool):
        raise ContractError("bad_type", "sync must be true or false")
    _number(msg, "boot", 0, 2**31 - 1, not sync, True)
    _number(msg, "up", 0, MAX_SEQ, not sync, True)
    if not sync:
        return
    _number(msg, "t", 0, MAX_SEQ, True, True)
    if msg["t"] < MIN_SYNCED_TIME_MS:
        raise ContractError("time_too_old", "t=%d is before 2020 although sync is true" % msg["t"])
    if now_ms is not None and msg["t"] > now_ms + MAX_FUTURE_SKEW_MS:
        raise ContractError("future_time", "t is %d s ahead" % ((msg["t"] - now_ms) // 1000))


def _check_position(msg):
    _number(msg, "lat", -90, 90, True)
    _number(msg, "lon", -180, 180, True)
    if msg["lat"] == 0 and msg["lon"] == 0:
        raise ContractError("out_of_range", "lat=0 lon=0 is a receiver without a fix")
    _number(msg, "alt", -500, 9000, False)
    _number(msg, "speed", 0, 150, False)
    _number(msg, "heading", 0, 360, False)
    _number(msg, "sats", 0, 99, False, True)
    _number(msg, "hdop", 0, 100, False)


def _check_reading(msg):
    if not is_field_name(msg.get("sensor")):
        raise ContractError("missing_field" if "sensor" not in msg else "bad_name", "sensor")
    _text(msg, "unit", 8, True)
    if msg["unit"] not in UNITS:
        raise ContractError("unknown_unit", msg["unit"])
    low, high = UNITS[msg["unit"]]
    _number(msg, "value", low, high, True)
    _choice(msg, "quality", QUALITIES, False)


def _check_event(msg):
    if not is_field_name(msg.get("event")):
        raise ContractError("missing_field" if "event" not in msg else "bad_name", "event")
    _number(msg, "value", -(10**9), 10**9, False)
    _text(msg, "unit", 8, False)
    if msg.get("unit") is not None and msg["unit"] not in UNITS:
        raise ContractError("unknown_unit", msg["unit"])
    _text(msg, "text", MAX_TEXT, False)


def _check_data(channel, msg, now_ms):
    _check_version(msg)
    _number(msg, "seq", 0, MAX_SEQ, True, True)
    _check_clock(msg, now_ms)
    if channel == POSITION:
        _check_position(msg)
    elif channel == READING:
        _check_reading(msg)
    else:
        _check_event(msg)
    return msg


def _check_status(msg, now_ms):
    _check_version(msg)
    _choice(msg, "state", STATES, True)
    _text(msg, "fw", 32, False)
    _text(msg, "reset", 32, False)
    _number(msg, "boot", 0, 2**31 - 1, False, True)
    _number(msg, "up", 0, MAX_SEQ, False, True)
    _number(msg, "rssi", -150, 0, False, True)
    _number(msg, "buffered", 0, MAX_SEQ, False, True)
    _number(msg, "dropped", 0, MAX_SEQ, False, True)
    _number(msg, "sats", 0, 99, False, True)
    _number(msg, "hdop", 0, 100, False)
    _number(msg, "heap", 0, MAX_SEQ, False, True)
    _number(msg, "battery", 0, 100, False)
    if "t" in msg:
        _check_clock(msg, now_ms)
    return msg


def _check_command(msg):
    _check_version(msg)
    if not isinstance(msg.get("set"), dict):
        raise ContractError("missing_field", "set")
    return msg


def check_batch_items(msg, now_ms):
    """Check each item of a batch on its own: one bad item must not sink the rest.

    Returns a list of (channel, message) or (channel, ContractError)."""
    _check_version(msg)
    items = msg.get("items")
    if not isinstance(items, list) or not items:
        raise ContractError("missing_field", "items")
    if len(items) > MAX_BATCH_ITEMS:
        raise ContractError("too_many_items", "%d > %d" % (len(items), MAX_BATCH_ITEMS))
    results = []
    for index in range(len(items)):
        results.append(_check_item(items[index], index, now_ms))
    return results


def _check_item(item, index, now_ms):
    channel = item.get("ch") if isinstance(item, dict) else None
    try:
        if channel not in DATA_CHANNELS:
            raise ContractError("unknown_channel", "ch must be pos, reading or event")
        return channel, _check_data(channel, item, now_ms)
    except ContractError as err:
        err.detail = "items[%d]: %s" % (index, err.detail)
        err.item = item  # the refused item itself, kept for quarantine
        return channel, err


def load(payload, limit):
    """JSON bytes -> object, refusing oversize payloads before parsing them."""
    if len(payload) > limit:
        raise ContractError("oversize", "%d bytes > %d" % (len(payload), limit))
    try:
        return json.loads(payload)
    except Exception:  # ValueError, bad UTF-8, or nesting too deep for the parser
        raise ContractError("bad_json", "not valid JSON")


def decode(channel, payload, now_ms=None):
    """Check a payload received on `channel`. Returns the message as a dict
    (for a batch: the list from check_batch_items). now_ms: receiver's clock."""
    if channel == BATCH:
        return check_batch_items(load(payload, MAX_BATCH_PAYLOAD), now_ms)
    msg = load(payload, MAX_PAYLOAD)
    if channel in DATA_CHANNELS:
        return _check_data(channel, msg, now_ms)
    if channel == STATUS:
        return _check_status(msg, now_ms)
    if channel == COMMAND:
        return _check_command(msg)
    raise ContractError("unknown_channel", str(channel)[:32])
