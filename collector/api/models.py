"""Response shapes for the generated OpenAPI document (/openapi.json).

The routes send ready-made JSON bytes from the snapshot; these models only
describe them, so API users and the docs see every field with its meaning.
"""

from enum import IntEnum
from typing import Literal

from pydantic import BaseModel, Field


class Point(BaseModel):
    type: Literal["Point"] = "Point"
    coordinates: tuple[float, float] = Field(description="[lon, lat] (GeoJSON order)")


class VehicleProperties(BaseModel):
    id: str = Field(description="device name in the town, e.g. bus-01")
    label: str = Field(description="display name, e.g. 市内線バス1号車")
    kind: Literal["bus", "garbage_truck", "stall"]
    t: int = Field(description="time of the fix, Unix ms")
    time: str = Field(description="time of the fix, ISO 8601 in the town's time zone")
    stale: bool = Field(description="older than the vehicle's stale_after_s: not live")
    speed: float | None = Field(description="m/s")
    heading: float | None = Field(description="degrees from north")


class Vehicle(BaseModel):
    type: Literal["Feature"] = "Feature"
    id: str
    geometry: Point
    properties: VehicleProperties


class VehicleCollection(BaseModel):
    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[Vehicle]


class Reading(BaseModel):
    sensor: str = Field(description="e.g. snow_depth, air_temp")
    value: float
    unit: str = Field(description="e.g. cm, degC (docs/protocol.md)")
    quality: str | None = Field(description="reference = 参考値 (not a certified instrument)")
    t: int
    time: str


class SensorProperties(BaseModel):
    id: str
    label: str
    kind: str
    t: int = Field(description="newest reading, Unix ms")
    stale: bool
    readings: list[Reading]


class Sensor(BaseModel):
    type: Literal["Feature"] = "Feature"
    id: str
    geometry: Point | None = Field(description="null when no location is configured")
    properties: SensorProperties


class SensorCollection(BaseModel):
    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[Sensor]


class LineString(BaseModel):
    type: Literal["LineString"] = "LineString"
    coordinates: list[tuple[float, float]]


class TrackProperties(BaseModel):
    id: str
    kind: str
    times: list[int] = Field(description="Unix ms of each point")


class Track(BaseModel):
    type: Literal["Feature"] = "Feature"
    id: str
    geometry: LineString
    properties: TrackProperties


class HistoryPoint(BaseModel):
    t: int = Field(description="start of the bucket, Unix ms")
    time: str
    avg: float
    min: float
    max: float
    count: int


class History(BaseModel):
    id: str
    sensor: str
    unit: str | None
    quality: str | None
    bucket_s: int
    from_: int = Field(alias="from")
    to: int
    points: list[HistoryPoint]


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: Literal["ok", "unavailable"]
    engine: str
    snapshot_age_ms: int
    receiving: Literal["ok", "not_receiving", "no_devices_online"] = Field(
        description="not_receiving: devices are online but no message was stored for "
                    "longer than [web] silence_s")
    newest_message_age_ms: int | None = Field(
        description="age of the newest stored message; null when nothing is stored yet")
    devices_online: int = Field(description="devices whose latest status is online")
    live_clients: int
    version: str


class Error(BaseModel):
    """Every error answer: one fixed bilingual line that never repeats the request."""

    detail: str = Field(description="日本語 / English")


class Bucket(IntEnum):
    """The history's bucket sizes, in seconds."""

    minute = 60
    five_minutes = 300
    ten_minutes = 600
    quarter_hour = 900
    half_hour = 1800
    hour = 3600
    three_hours = 10800
    six_hours = 21600
    day = 86400


def errors(*codes: int) -> dict[int | str, dict]:
    """The `responses=` of a route: its error answers, all shaped like Error."""
    words = {304: "変更なし / not modified (If-None-Match)",
             404: "ありません / no such town or device, or not shown now",
             422: "リクエストが正しくありません / bad request",
             429: "この接続元からの接続が多すぎます / too many streams from this address",
             503: "一時的に使えません / temporarily unavailable (Retry-After)"}
    return {code: ({"description": words[code]} if code == 304
                   else {"model": Error, "description": words[code]}) for code in codes}
