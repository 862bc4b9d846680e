"""Public API v1 routes (docs/api.md). Read-only, no login, policy-filtered."""

from collections.abc import Callable
from typing import Annotated, Literal, TypeVar

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from collector.api import models
from collector.api.features import collection, track_feature
from collector.api.live import Hub
from collector.api.snapshot import TownView, etag_of, now_ms, to_json
from collector.policy import DevicePolicy, local_time_text
from collector.storage import Storage, StorageUnavailable
from machikit import __version__
from machikit.texts import say

router = APIRouter(prefix="/api/v1")
BUCKETS = (60, 300, 600, 900, 1800, 3600, 10800, 21600, 86400)
NAME = r"^[A-Za-z0-9_\-]{1,64}$"
T = TypeVar("T")


def hub_of(request: Request) -> Hub:
    return request.app.state.hub


def cached(request: Request, body: bytes, etag: str, max_age: int) -> Response:
    """A JSON body a proxy or CDN may keep for max_age s; 304 when the client has it."""
    headers = {"ETag": etag, "Cache-Control": f"public, max-age={max_age}",
               "Vary": "Accept-Encoding"}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


def town_view(request: Request, town: str) -> TownView:
    """The town's public view; a configured town with nothing public yet is empty, not 404."""
    hub = hub_of(request)
    view = hub.snapshot.towns.get(town)
    if view is not None and view.policies:
        return view
    if town in (hub.settings.town, hub.settings.map.town):
        return view or TownView()
    raise HTTPException(404, say("api_no_town", town=town))


def public_device(view: TownView, name: str, vehicle: bool) -> DevicePolicy:
    policy = view.policies.get(name)
    if policy is None or policy.is_vehicle != vehicle:
        raise HTTPException(404, say("api_no_device", name=name))
    return policy


@router.get("/health", response_model=models.Health, tags=["service"],
            summary="稼働状況 / service health")
def health(request: Request) -> JSONResponse:
    hub = hub_of(request)
    try:
        hub.snapshot.storage.ping()
        database = "ok"
    except StorageUnavailable:
        database = "unavailable"
    age = now_ms() - hub.snapshot.polled_at
    fresh = age <= 10_000 + 10 * hub.settings.web.live_poll_s * 1000
    ok = database == "ok" and fresh
    return JSONResponse(
        {"status": "ok" if ok else "degraded", "database": database,
         "engine": hub.snapshot.storage.engine, "snapshot_age_ms": age,
         "live_clients": hub.client_count, "version": __version__},
        status_code=200 if ok else 503, headers={"Cache-Control": "no-store"})


@router.get("/towns/{town}/vehicles", response_model=models.VehicleCollection,
            tags=["vehicles"], summary="車両の現在地 / latest vehicle positions")
async def vehicles(request: Request, town: str,
                   kind: Literal["bus", "garbage_truck", "stall"] | None = None) -> Response:
    shown = town_view(request, town).vehicles
    if kind is None:
        return cached(request, shown.body, shown.etag, 2)
    body = to_json(collection(f for f in shown.features.values()
                              if f["properties"]["kind"] == kind))
    return cached(request, body, etag_of(body), 2)


@router.get("/towns/{town}/vehicles/{name}/track", response_model=models.Track,
            tags=["vehicles"], summary="車両の最近の軌跡 / a vehicle's recent track")
def track(request: Request, town: str, name: str,
          minutes: Annotated[int, Query(ge=1, le=120)] = 30) -> Response:
    view = town_view(request, town)
    policy = public_device(view, name, vehicle=True)
    if name not in view.vehicles.features:  # hidden now (depot, off duty): no track either
        raise HTTPException(404, say("api_not_shown", name=name))
    fixes = read(lambda s: s.track(policy.device.id, now_ms() - minutes * 60_000), request)
    body = to_json(track_feature(policy, fixes))
    return cached(request, body, etag_of(body), 5)


@router.get("/towns/{town}/sensors", response_model=models.SensorCollection,
            tags=["sensors"], summary="センサーの最新値 / latest sensor readings")
async def sensors(request: Request, town: str) -> Response:
    shown = town_view(request, town).sensors
    return cached(request, shown.body, shown.etag, 10)


@router.get("/towns/{town}/sensors/{name}/history", response_model=models.History,
            tags=["sensors"], summary="センサーの履歴 / a sensor's history in time buckets")
def history(request: Request, town: str, name: str,
            sensor: Annotated[str, Query(pattern=NAME)],
            hours: Annotated[int, Query(ge=1, le=744)] = 24,
            bucket: Annotated[int, Query(description="seconds: " + ", ".join(map(str, BUCKETS)))]
            = 3600) -> Response:
    if bucket not in BUCKETS:
        raise HTTPException(422, say("api_bad_bucket", allowed=", ".join(map(str, BUCKETS))))
    policy = public_device(town_view(request, town), name, vehicle=False)
    until = now_ms()
    since = until - hours * 3_600_000
    found = read(lambda s: s.reading_history(policy.device.id, sensor, since, until,
                                             bucket * 1000, policy.zone.key), request)
    points = [{**p, "time": local(p["t"], policy)} for p in found["points"]]
    body = to_json({"id": name, "sensor": sensor, "unit": found["unit"],
                    "quality": found["quality"], "bucket_s": bucket, "from": since, "to": until,
                    "points": points})
    return cached(request, body, etag_of(body), 60)


@router.get("/towns/{town}/live", tags=["live"], response_class=StreamingResponse,
            summary="ライブ更新 (Server-Sent Events) / live updates",
            responses={200: {"content": {"text/event-stream": {}}}})
async def live(request: Request, town: str) -> StreamingResponse:
    hub = hub_of(request)
    town_view(request, town)
    if hub.client_count >= hub.settings.web.max_live_clients:
        raise HTTPException(503, say("api_too_many_clients"), headers={"Retry-After": "10"})
    return StreamingResponse(hub.stream(town), media_type="text/event-stream", headers={
        "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def read(work: Callable[[Storage], T], request: Request) -> T:
    try:
        return work(hub_of(request).snapshot.storage)
    except StorageUnavailable as err:
        raise HTTPException(503, say("api_database_down", detail=""),
                            headers={"Retry-After": "5"}) from err


def local(t_ms: int, policy: DevicePolicy) -> str:
    return local_time_text(t_ms, policy.zone)
