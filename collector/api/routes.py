"""Public API v1 routes (docs/api.md). Read-only, no login, policy-filtered."""

from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

from collector.api import models
from collector.api.features import collection, track_feature
from collector.api.live import Hub
from collector.api.snapshot import TownView, etag_of, now_ms, to_json
from collector.policy import DevicePolicy, local_time_text
from collector.storage import Storage, StorageUnavailable
from machikit import __version__
from machikit.texts import say

router = APIRouter(prefix="/api/v1")
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
    """The town's public view; a known town with nothing public yet is empty, not 404.
    Error answers never repeat the name asked for (it could be anything)."""
    snapshot = hub_of(request).snapshot
    if not snapshot.town_exists(town):
        raise HTTPException(404, say("api_no_town"))
    return snapshot.towns.get(town) or TownView()


def public_device(view: TownView, name: str, vehicle: bool) -> DevicePolicy:
    policy = view.policies.get(name)
    if policy is None or policy.is_vehicle != vehicle:
        raise HTTPException(404, say("api_no_device"))
    return policy


@router.get("/health", response_model=models.Health, tags=["service"],
            summary="稼働状況 / service health",
            responses={503: {"model": models.Health, "description": "degraded"}})
def health(request: Request) -> JSONResponse:
    hub = hub_of(request)
    try:
        hub.snapshot.storage.ping()
        database = "ok"
    except StorageUnavailable:
        database = "unavailable"
    now = now_ms()
    age = now - hub.snapshot.polled_at
    fresh = age <= 10_000 + 10 * hub.settings.web.live_poll_s * 1000
    activity = hub.snapshot.activity
    newest = activity["newest_ms"]
    message_age = None if newest is None else max(0, now - newest)
    receiving = receiving_state(activity["online"], message_age, hub.settings.web.silence_s)
    ok = database == "ok" and fresh and receiving != "not_receiving"
    return JSONResponse(
        {"status": "ok" if ok else "degraded", "database": database,
         "engine": hub.snapshot.storage.engine, "snapshot_age_ms": age,
         "receiving": receiving, "newest_message_age_ms": message_age,
         "devices_online": activity["online"],
         "live_clients": hub.client_count, "version": __version__},
        status_code=200 if ok else 503, headers={"Cache-Control": "no-store"})


def receiving_state(online: int, message_age_ms: int | None, silence_s: int) -> str:
    """A device can cut the collector off without a sound (e.g. by taking its MQTT
    client id): devices say they are online, yet nothing new is stored."""
    if online == 0:
        return "no_devices_online"
    if message_age_ms is None or message_age_ms > silence_s * 1000:
        return "not_receiving"
    return "ok"


@router.get("/towns/{town}/vehicles", response_model=models.VehicleCollection,
            responses=models.errors(304, 404, 422), tags=["vehicles"],
            summary="車両の現在地 / latest vehicle positions")
async def vehicles(request: Request, town: str,
                   kind: Literal["bus", "garbage_truck", "stall"] | None = None) -> Response:
    shown = town_view(request, town).vehicles
    if kind is None:
        return cached(request, shown.body, shown.etag, 2)
    body = to_json(collection(f for f in shown.features.values()
                              if f["properties"]["kind"] == kind))
    return cached(request, body, etag_of(body), 2)


@router.get("/towns/{town}/vehicles/{name}/track", response_model=models.Track,
            responses=models.errors(304, 404, 422, 503), tags=["vehicles"],
            summary="車両の最近の軌跡 / a vehicle's recent track")
def track(request: Request, town: str, name: str,
          minutes: Annotated[int, Query(ge=1, le=120)] = 30) -> Response:
    view = town_view(request, town)
    policy = public_device(view, name, vehicle=True)
    if name not in view.vehicles.features:  # hidden now (depot, off duty): no track either
        raise HTTPException(404, say("api_not_shown"))
    fixes = read(lambda s: s.track(policy.device.id, now_ms() - minutes * 60_000), request)
    body = to_json(track_feature(policy, fixes))
    return cached(request, body, etag_of(body), 5)


@router.get("/towns/{town}/sensors", response_model=models.SensorCollection,
            responses=models.errors(304, 404), tags=["sensors"],
            summary="センサーの最新値 / latest sensor readings")
async def sensors(request: Request, town: str) -> Response:
    shown = town_view(request, town).sensors
    return cached(request, shown.body, shown.etag, 10)


@router.get("/towns/{town}/sensors/{name}/history", response_model=models.History,
            responses=models.errors(304, 404, 422, 503), tags=["sensors"],
            summary="センサーの履歴 / a sensor's history in time buckets")
def history(request: Request, town: str, name: str,
            sensor: Annotated[str, Query(pattern=NAME)],
            hours: Annotated[int, Query(ge=1, le=744)] = 24,
            bucket: Annotated[models.Bucket, Query(description="seconds")] = models.Bucket.hour
            ) -> Response:
    policy = public_device(town_view(request, town), name, vehicle=False)
    until = now_ms()
    since = until - hours * 3_600_000
    found = read(lambda s: s.reading_history(policy.device.id, sensor, since, until,
                                             bucket.value * 1000, policy.zone.key), request)
    points = [{**p, "time": local(p["t"], policy)} for p in found["points"]]
    body = to_json({"id": name, "sensor": sensor, "unit": found["unit"],
                    "quality": found["quality"], "bucket_s": bucket.value, "from": since,
                    "to": until, "points": points})
    return cached(request, body, etag_of(body), 60)


@router.get("/towns/{town}/live", tags=["live"], response_class=StreamingResponse,
            summary="ライブ更新 (Server-Sent Events) / live updates",
            responses={200: {"content": {"text/event-stream": {}}}, **models.errors(404, 429, 503)})
async def live(request: Request, town: str) -> Response:
    hub = hub_of(request)
    town_view(request, town)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    if request.scope.get("machikit.head"):  # an uptime check: no stream to keep open
        return Response(media_type="text/event-stream", headers=headers)
    if hub.client_count >= hub.settings.web.max_live_clients:
        raise HTTPException(503, say("api_too_many_clients"), headers={"Retry-After": "10"})
    address = request.client.host if request.client else ""
    if not hub.admit(address):
        raise HTTPException(429, say("api_too_many_streams"), headers={"Retry-After": "30"})
    return LiveResponse(hub.stream(town), media_type="text/event-stream", headers=headers,
                        done=lambda: hub.release(address))


class LiveResponse(StreamingResponse):
    """A stream that gives its address's place back however it ends (closed by the
    client, sent away as too slow, or the server stopping)."""

    def __init__(self, *args: Any, done: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.done = done

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.done()


def read(work: Callable[[Storage], T], request: Request) -> T:
    try:
        return work(hub_of(request).snapshot.storage)
    except StorageUnavailable as err:
        raise HTTPException(503, say("api_database_down", detail=""),
                            headers={"Retry-After": "5"}) from err


def local(t_ms: int, policy: DevicePolicy) -> str:
    return local_time_text(t_ms, policy.zone)
