"""From MQTT messages to table rows: check with the contract, find the device,
place the message in time, and send everything refused to quarantine."""

import time
from dataclasses import dataclass

from collector.storage.base import Batch, Device, Row, Storage
from machikit import contract

QUARANTINE_PAYLOAD_LIMIT = 1024 * 1024  # keep the first MiB of absurdly large payloads


@dataclass(slots=True)
class Incoming:
    """One MQTT message as received, before any checking."""

    topic: str
    payload: bytes
    received_ms: int
    mid: int = 0
    qos: int = 1
    retain: bool = False
    generation: int = 0  # which broker connection delivered it (acks only go back on it)


@dataclass(slots=True)
class Checked:
    incoming: Incoming
    town: str
    device: str
    channel: str
    msg: dict
    from_batch: bool = False


class Registry:
    """Known devices, cached so the database is not asked for every message."""

    def __init__(self, storage: Storage, ttl_s: float = 30.0, unknown_ttl_s: float = 5.0) -> None:
        self.storage = storage
        self.ttl_s, self.unknown_ttl_s = ttl_s, unknown_ttl_s
        self._cache: dict[tuple[str, str], tuple[Device | None, float]] = {}

    def lookup(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], Device]:
        now = time.monotonic()
        missing = {k for k in keys if k not in self._cache or self._cache[k][1] < now}
        if missing:
            found = self.storage.find_devices(missing)
            for key in missing:
                device = found.get(key)
                ttl = self.ttl_s if device else self.unknown_ttl_s
                self._cache[key] = (device, now + ttl)
        return {k: d for k in keys if (d := self._cache[k][0]) is not None}


_topics: dict[str, tuple[str, str, str]] = {}


def parse_topic(topic: str) -> tuple[str, str, str]:
    """contract.parse_topic, remembered: a town's devices use the same topics all day."""
    parsed = _topics.get(topic)
    if parsed is None:
        parsed = contract.parse_topic(topic)
        if len(_topics) > 100_000:  # bounded, whatever devices send
            _topics.clear()
        _topics[topic] = parsed
    return parsed


def check(messages: list[Incoming]) -> tuple[list[Checked], Batch]:
    """Contract checks only (no database): good messages, and a batch of quarantine rows."""
    good: list[Checked] = []
    refused = Batch()
    for incoming in messages:
        try:
            town, device, channel = parse_topic(incoming.topic)
            msg = contract.decode(channel, incoming.payload, incoming.received_ms)
        except contract.ContractError as err:
            refused.add("quarantine", quarantine_row(incoming, err.reason, err.detail))
            continue
        if channel == contract.BATCH:
            _split_batch(incoming, town, device, msg, good, refused)
        elif channel != contract.COMMAND:  # commands go to devices; not stored
            good.append(Checked(incoming, town, device, channel, msg))
    return good, refused


def _split_batch(incoming: Incoming, town: str, device: str, items: list,
                 good: list[Checked], refused: Batch) -> None:
    for channel, item in items:
        if isinstance(item, contract.ContractError):
            refused.add("quarantine", quarantine_row(incoming, item.reason, item.detail,
                                                     item.item))
        else:
            good.append(Checked(incoming, town, device, channel, item, from_batch=True))


def to_rows(good: list[Checked], refused: Batch, registry: Registry, storage: Storage) -> Batch:
    """Rows for one transaction: the refused ones plus every checked message."""
    batch = refused
    devices = registry.lookup({(c.town, c.device) for c in good})
    known = [c for c in good if (c.town, c.device) in devices]
    for c in good:
        if (c.town, c.device) not in devices:
            item = c.msg if c.from_batch else None
            batch.add("quarantine", quarantine_row(c.incoming, "unknown_device",
                                                   c.town + "/" + c.device, item))
    starts = _boot_starts(known, devices, storage)
    for c in known:
        device_id = devices[(c.town, c.device)].id
        if c.channel == contract.STATUS:
            if not c.incoming.retain:  # a retained copy was stored when it was new
                batch.add("device_status", status_row(c, device_id))
        else:
            when = message_time(c, starts.get((device_id, c.msg.get("boot", 0))))
            batch.add(_TABLE[c.channel], _DATA_ROW[c.channel](c, device_id, when))
    return batch


def _boot_starts(known: list[Checked], devices: dict, storage: Storage) -> dict:
    """For unsynced clocks: when each (device, boot) started, fixed at first sight."""
    candidates: dict[tuple[int, int], int] = {}
    for c in known:
        if c.channel in contract.DATA_CHANNELS and c.msg.get("sync", True) is False:
            key = (devices[(c.town, c.device)].id, c.msg["boot"])
            start = c.incoming.received_ms - c.msg["up"]
            candidates[key] = min(start, candidates.get(key, start))
    return storage.boot_starts(candidates) if candidates else {}


def message_time(c: Checked, boot_start: int | None) -> int:
    """Synced: the device's time. Unsynced: boot start + uptime, the same on every replay."""
    if c.msg.get("sync", True):
        return int(c.msg["t"])
    assert boot_start is not None
    return boot_start + int(c.msg["up"])


def _common(c: Checked, device_id: int, when: int) -> tuple:
    return (when, device_id, c.msg["seq"], c.incoming.received_ms, c.msg.get("sync", True))


def position_row(c: Checked, device_id: int, when: int) -> Row:
    m = c.msg
    return (*_common(c, device_id, when), m["lat"], m["lon"], m.get("alt"), m.get("speed"),
            m.get("heading"), m.get("sats"), m.get("hdop"))


def reading_row(c: Checked, device_id: int, when: int) -> Row:
    m = c.msg
    return (*_common(c, device_id, when), m["sensor"], m["value"], m["unit"], m.get("quality"))


def event_row(c: Checked, device_id: int, when: int) -> Row:
    m = c.msg
    return (*_common(c, device_id, when), m["event"], m.get("value"), m.get("unit"),
            m.get("text"))


def status_row(c: Checked, device_id: int) -> Row:
    m = c.msg
    synced = "t" in m and m.get("sync", True)
    when = m["t"] if synced else c.incoming.received_ms
    return (when, device_id, c.incoming.received_ms, m["state"], m.get("fw"), m.get("boot"),
            m.get("up"), m.get("rssi"), m.get("buffered"), m.get("heap"), m.get("battery"),
            m.get("reset"), m.get("dropped"), _clock_state(m), m.get("sats"), m.get("hdop"))


def _clock_state(m: dict) -> bool | None:
    # True: the device's clock is set (NTP/GPS); False: boot + uptime only; None: not said.
    if "t" not in m and "sync" not in m:
        return None
    return "t" in m and m.get("sync", True) is not False


def quarantine_row(incoming: Incoming, reason: str, detail: str, item: object = None) -> Row:
    """Keep what was refused: the item itself for one bad item of a batch, else the payload."""
    payload = contract.encode(item) if item is not None else incoming.payload
    if len(payload) > QUARANTINE_PAYLOAD_LIMIT:
        detail = f"{detail} (first {QUARANTINE_PAYLOAD_LIMIT} of {len(payload)} bytes kept)"
        payload = payload[:QUARANTINE_PAYLOAD_LIMIT]
    return (incoming.received_ms, incoming.topic, payload, reason, detail)


_TABLE = {contract.POSITION: "positions", contract.READING: "readings", contract.EVENT: "events"}
_DATA_ROW = {contract.POSITION: position_row, contract.READING: reading_row,
             contract.EVENT: event_row}
