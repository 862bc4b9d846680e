"""Collector settings: one TOML file plus MACHIKIT_* environment variables.

With nothing configured, machikit runs the embedded default: an MQTT broker
inside the process and an SQLite file in ./machikit-data. Setting
MACHIKIT_DATABASE_URL and MACHIKIT_MQTT_URL (or the same keys in
machikit.toml) switches to TimescaleDB and Mosquitto. Environment variables
win over the file. See docs/operations.md for every key.
"""

import os
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from machikit.texts import say

CONFIG_FILE_ENV = "MACHIKIT_CONFIG"
DEFAULT_CONFIG_FILE = "machikit.toml"


class Retention(BaseModel):
    """Days to keep each kind of data; 0 keeps it forever."""

    positions: int = Field(30, ge=0)  # raw GPS tracks: short (privacy, volume)
    readings: int = Field(3650, ge=0)  # sensor values: long (snow seasons compare)
    events: int = Field(730, ge=0)
    device_status: int = Field(90, ge=0)
    quarantine: int = Field(90, ge=0)


GSI_TILES = "https://cyberjapandata.gsi.go.jp/xyz/std/{z}/{x}/{y}.png"
GSI_ATTRIBUTION = (
    '<a href="https://maps.gsi.go.jp/development/ichiran.html" target="_blank" '
    'rel="noopener">地理院タイル</a>'
)


class Web(BaseModel):
    """The public API and map page (`[web]`)."""

    enabled: bool = True
    host: str = "127.0.0.1"  # 0.0.0.0 serves the LAN; the internet goes through a proxy
    port: int = Field(8080, ge=0, le=65535)  # 0: any free port (tests)
    live_poll_s: float = Field(0.5, gt=0, le=10)  # how often the live stream looks for new data
    heartbeat_s: float = Field(15.0, gt=0)
    max_live_clients: int = Field(5000, ge=1)
    # One household or school behind one address opens a few streams; a flood opens
    # hundreds. Behind a proxy the address is the proxy's unless it is trusted
    # (uvicorn's forwarded_allow_ips, default 127.0.0.1 and ::1: a proxy on this machine).
    max_live_per_address: int = Field(20, ge=1)
    # Devices send a status at least every 5 min (firmware status_s, pi trackers 60 s):
    # three missed reports in a row means the collector no longer hears them.
    silence_s: int = Field(900, ge=60)
    max_body_bytes: int = Field(64 * 1024, ge=1024)  # the API only reads; no body is needed
    max_header_bytes: int = Field(16 * 1024, ge=4096)  # request line plus all headers


class MapView(BaseModel):
    """What the public map shows first (`[map]`)."""

    town: str | None = None  # None: `town` if it is one town, else the first with public devices
    title: str | None = None  # None: 「{town} の運行状況」
    title_en: str | None = None  # None: title, or "{town}: live map"
    center: tuple[float, float] | None = None  # (lat, lon); None: fit to the markers
    zoom: int = Field(14, ge=1, le=18)
    tile_url: str = GSI_TILES
    tile_attribution: str = GSI_ATTRIBUTION
    tile_max_zoom: int = Field(18, ge=1, le=22)


class Publish(BaseModel):
    """Town-wide defaults of the publish policy (`[publish]`); devices may override."""

    timezone: str = "Asia/Tokyo"
    vehicle_stale_after_s: int = Field(120, gt=0)  # greyed with its age after this
    vehicle_hide_after_s: int = Field(1800, gt=0)  # gone from the map after this
    sensor_stale_after_s: int = Field(3 * 3600, gt=0)  # gauges report hourly
    sensor_hide_after_s: int = Field(7 * 86400, gt=0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MACHIKIT_", env_nested_delimiter="__", extra="forbid"
    )

    data_dir: Path = Path("machikit-data")
    database_url: str | None = None  # None: SQLite file in data_dir
    mqtt_url: str | None = None  # None: the embedded broker
    embedded_mqtt_host: str = "127.0.0.1"  # LAN access comes with device credentials
    embedded_mqtt_port: int = 1883
    mqtt_protocol: Literal["5", "3.1.1"] | None = None  # None: 5, or 3.1.1 for embedded
    mqtt_client_id: str = "machikit-collector"
    mqtt_shared_group: str | None = None  # several workers: MQTT shared subscription
    mqtt_ca_file: Path | None = None  # for mqtts:// with a private CA
    town: str = "+"  # collect one town, or all ("+")
    receive_maximum: int = Field(1000, ge=10, le=65535)  # unacked messages in flight
    batch_max: int = Field(1000, ge=1)
    session_expiry_s: int = Field(7 * 24 * 3600, ge=0)  # broker keeps our queue this long
    stats_interval_s: float = Field(10.0, gt=0)
    retention: Retention = Retention()
    retention_interval_s: float = Field(3600.0, gt=0)
    web: Web = Web()
    map: MapView = MapView()
    publish: Publish = Publish()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = os.environ.get(CONFIG_FILE_ENV, DEFAULT_CONFIG_FILE)
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls, path)

    @property
    def embedded_broker(self) -> bool:
        return self.mqtt_url is None

    def database(self) -> str:
        return self.database_url or "sqlite:///" + str(self.data_dir / "machikit.db")

    def protocol(self) -> str:
        return self.mqtt_protocol or ("3.1.1" if self.embedded_broker else "5")


class MqttTarget(BaseModel):
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False


def parse_mqtt_url(url: str) -> MqttTarget:
    """mqtt://user:password@host:1883 or mqtts://… (TLS, default port 8883)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(say("bad_mqtt_url", url=redact(url)))
    tls = parts.scheme == "mqtts"
    return MqttTarget(
        host=parts.hostname,
        port=parts.port or (8883 if tls else 1883),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=tls,
    )


def redact(url: str) -> str:
    """The URL without its password, for logs and error messages."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    return url.replace(":" + parts.password + "@", ":***@", 1)


def load_settings(config_file: str | None = None) -> Settings:
    """Read settings, turning validation errors into one bilingual line."""
    if config_file:
        os.environ[CONFIG_FILE_ENV] = config_file
        if not Path(config_file).is_file():
            raise SystemExit(say("config_unreadable", path=config_file, detail="not found"))
    try:
        return Settings()
    except ValidationError as err:
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise SystemExit(say("config_invalid", detail=detail)) from err
    except (OSError, ValueError) as err:
        raise SystemExit(say("config_unreadable", path=config_file, detail=err)) from err
