"""The FastAPI application: public API v1, live stream, map page and its files."""

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import Scope

from collector.api import page, routes
from collector.api.guard import Guard
from collector.api.live import Hub
from collector.api.snapshot import Snapshot
from collector.settings import Settings, load_settings
from collector.storage import Storage, open_storage
from machikit import __version__
from machikit.texts import say


class CachedStatic(StaticFiles):
    """The map's files (Leaflet, JS, CSS) may be cached by browsers and proxies for a day."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.setdefault("Cache-Control", "public, max-age=86400")
        return response


def create_app(settings: Settings, storage: Storage | None = None) -> FastAPI:
    """The app reads through its own storage object (its own database connection),
    never the collector's, so a crowd of readers cannot slow the writer."""
    storage = storage or open_storage(settings.database())
    hub = Hub(settings, Snapshot(settings, storage))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub.start(asyncio.get_running_loop())
        await asyncio.to_thread(hub.first_poll.wait, 10)
        calm_garbage_collector()
        yield
        hub.stop()
        storage.close()

    app = FastAPI(title="machikit public API", version=__version__, lifespan=lifespan,
                  description=say("api_description"), docs_url=None, redoc_url=None)
    app.state.settings, app.state.hub = settings, hub
    app.include_router(routes.router)
    app.include_router(page.router)
    app.mount("/static", CachedStatic(directory=page.WEB_DIR), name="static")
    app.add_exception_handler(RequestValidationError, bad_request)
    app.add_middleware(Guard, settings=settings)
    return app


def calm_garbage_collector() -> None:
    """Thousands of live clients are ~200 long-lived objects each; Python's default
    thresholds then run full collections that freeze the loop for ~240 ms every few
    seconds and free nothing (measured at 2,000 clients). Freeze what start-up made
    and collect the oldest generation less often."""
    gc.freeze()
    gc.set_threshold(700, 10, 10_000)


async def bad_request(request: Request, error: Exception) -> JSONResponse:
    """A wrong query (e.g. minutes=9999) gets one bilingual line naming the parameter
    and the rule it broke, never the value sent (it could be anything, and long)."""
    errors = error.errors() if isinstance(error, RequestValidationError) else []
    detail = "; ".join(f"{e['loc'][-1]}: {rule(e)}" for e in errors)
    return JSONResponse({"detail": say("api_bad_request", detail=detail)}, status_code=422)


def rule(error: Any) -> str:
    """Pydantic's message, unless it quotes the value sent."""
    sent = str(error.get("input", ""))
    return error["type"] if sent and sent in error["msg"] else error["msg"]


def app_from_environment() -> FastAPI:
    """For `uvicorn --factory collector.api.app:app_from_environment` (several workers)."""
    return create_app(load_settings())
