"""What every storage engine offers the collector (SQLite and TimescaleDB).

Rows travel as plain tuples in the column order below, with times as Unix
milliseconds; each engine turns them into its own types.
"""

from dataclasses import dataclass, field
from typing import Protocol

TABLES: dict[str, tuple[str, ...]] = {
    "positions": (
        "time", "device_id", "seq", "received_at", "clock_synced",
        "lat", "lon", "alt", "speed", "heading", "sats", "hdop",
    ),
    "readings": (
        "time", "device_id", "seq", "received_at", "clock_synced",
        "sensor", "value", "unit", "quality",
    ),
    "events": (
        "time", "device_id", "seq", "received_at", "clock_synced",
        "event", "value", "unit", "text",
    ),
    "device_status": (
        "time", "device_id", "received_at", "state", "fw", "boot", "uptime_ms",
        "rssi", "buffered", "heap", "battery", "reset_cause", "dropped",
        "clock_synced", "sats", "hdop",
    ),
    "quarantine": ("received_at", "topic", "payload", "reason", "detail"),
}
DATA_TABLES = ("positions", "readings", "events", "device_status")
TIME_COLUMNS = ("time", "received_at")

Row = tuple[object, ...]


class StorageUnavailable(Exception):
    """The database cannot be reached right now; try the same batch again later."""


class StorageFull(StorageUnavailable):
    """The disk under the database is full: nothing can be committed until space is freed.
    A batch is kept (never acknowledged, never quarantined) and tried again, like an outage."""


@dataclass(frozen=True)
class Device:
    id: int
    town: str
    name: str
    kind: str = "sensor"
    public: bool = False
    label: str | None = None
    # publish policy and place: service hours, depots, location (docs/api.md)
    settings: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class DeviceAccount:
    """A registered device with its broker credentials (collector/registry.py)."""

    device: Device
    mqtt_user: str | None = None
    password_hash: str | None = None  # Mosquitto $7$ hash; the password itself is never kept
    created_ms: int = 0
    revoked_ms: int | None = None


@dataclass
class Batch:
    """Rows for one transaction, per table."""

    rows: dict[str, list[Row]] = field(default_factory=lambda: {t: [] for t in TABLES})

    def add(self, table: str, row: Row) -> None:
        self.rows[table].append(row)

    def __len__(self) -> int:
        return sum(len(rows) for rows in self.rows.values())


@dataclass
class WriteResult:
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0


class Storage(Protocol):
    engine: str

    def migrate(self) -> int: ...

    def write(self, batch: Batch) -> WriteResult: ...

    def find_devices(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], Device]: ...

    def add_device(
        self, town: str, name: str, kind: str = "sensor", public: bool = False,
        label: str | None = None, settings: dict | None = None,
    ) -> Device: ...

    # --- device registry and credentials (collector/registry.py) -------------

    def device_accounts(self, town: str | None = None) -> list[DeviceAccount]:
        """Every registered device, revoked ones included, ordered by town and name."""
        ...

    def set_credentials(self, town: str, name: str, mqtt_user: str, password_hash: str) -> bool:
        """False if no such device."""
        ...

    def revoke_device(self, town: str, name: str, now_ms: int) -> bool:
        """False if no such device or already revoked."""
        ...

    def boot_starts(self, candidates: dict[tuple[int, int], int]) -> dict[tuple[int, int], int]:
        """For (device_id, boot): the first estimate of when that boot began (ms)."""
        ...

    def apply_retention(self, days: dict[str, int], now_ms: int) -> dict[str, int]: ...

    def counts(self) -> dict[str, int]: ...

    def recent(self, table: str, limit: int) -> list[dict[str, object]]:
        """The newest rows of a data table, times in Unix ms, plus the device's name."""
        ...

    def info(self) -> dict[str, str]: ...

    # --- what the public API reads (collector/api) ---------------------------

    def public_devices(self, town: str | None = None) -> list[Device]: ...

    def latest_positions(self, device_ids: list[int], since_ms: int) -> dict[int, dict]:
        """device id -> newest fix after since_ms: t, lat, lon, speed, heading."""
        ...

    def latest_readings(self, device_ids: list[int], since_ms: int) -> dict[int, list[dict]]:
        """device id -> newest reading of each sensor: sensor, value, unit, quality, t."""
        ...

    def track(self, device_id: int, since_ms: int, limit: int = 5000) -> list[dict]: ...

    def reading_history(self, device_id: int, sensor: str, since_ms: int, until_ms: int,
                        bucket_ms: int, zone: str) -> dict:
        """unit, quality and points (t, avg, min, max, count) per time bucket."""
        ...

    def registered_towns(self) -> list[str]:
        """Towns with at least one device that is not revoked."""
        ...

    def receiving(self) -> dict:
        """newest_ms: when the newest stored message arrived (None: nothing yet);
        online: devices whose latest status is "online"."""
        ...

    def ping(self) -> None: ...

    def close(self) -> None: ...
