"""Running the web app: inside `serve`/`demo` (a thread) or alone (`machikit api`)."""

import argparse
import asyncio
import contextlib
import logging
import threading

import uvicorn
from fastapi import FastAPI

from collector.api.app import create_app
from collector.settings import Settings, load_settings
from machikit.texts import say

log = logging.getLogger("machikit.api")


def server_options(settings: Settings) -> dict:
    """The same for one process and for several workers. h11, not httptools: only h11
    limits the size of a request's headers (httptools kept 50 MB of them in memory)."""
    return {"host": settings.web.host, "port": settings.web.port, "log_level": "warning",
            "access_log": False, "proxy_headers": True, "timeout_graceful_shutdown": 3,
            "http": "h11", "h11_max_incomplete_event_size": settings.web.max_header_bytes}


def uvicorn_config(app: FastAPI, settings: Settings) -> uvicorn.Config:
    return uvicorn.Config(app, **server_options(settings))


class WebServer:
    """uvicorn in a background thread, with the port known once it listens."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        self.server = uvicorn.Server(uvicorn_config(self.app, settings))
        self._thread = threading.Thread(target=self._run, name="web", daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            asyncio.run(self.server.serve())
        except BaseException as err:  # SystemExit when the port is taken
            self.error = err

    def start(self) -> None:
        raise_open_files_limit()
        self._thread.start()
        while not self.server.started and self._thread.is_alive():
            self._thread.join(0.05)
        if not self.server.started:
            raise SystemExit(say("web_failed", host=self.settings.web.host,
                                 port=self.settings.web.port, detail=self.error or ""))

    @property
    def url(self) -> str:
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        return f"http://{shown}:{port}"

    def stop(self) -> None:
        self.app.state.hub.stop()  # end the live streams first
        self.server.should_exit = True
        self._thread.join(timeout=10)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="設定ファイル / config file (machikit.toml)")
    parser.add_argument("--workers", type=int, default=1,
                        help="プロセス数 / worker processes (each polls the database)")


def raise_open_files_limit() -> None:
    """Each live client is an open socket; a service's default soft limit (1,024)
    would cap the stream at about 1,000 phones. Take the hard limit (no-op on Windows)."""
    try:
        import resource
    except ImportError:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run_api(args: argparse.Namespace) -> int:
    """Only the public API and map, for a server where the collector runs apart."""
    settings = load_settings(args.config)
    raise_open_files_limit()
    print(say("web_ready", url=f"http://{settings.web.host}:{settings.web.port}/"), flush=True)
    if args.workers > 1:
        uvicorn.run("collector.api.app:app_from_environment", factory=True,
                    workers=args.workers, **server_options(settings))
    else:
        uvicorn.Server(uvicorn_config(create_app(settings), settings)).run()
    return 0
