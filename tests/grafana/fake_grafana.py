"""A local stand-in for Grafana's documented HTTP API, for `machikit grafana push` tests.

No Grafana server can be installed here, so this emulates only the endpoints push uses, as the
Grafana HTTP API reference documents them (legacy /api routes):

- GET  /api/health                  no authentication; {"commit", "database", "version"}
- GET  /api/folders/:uid            200 folder | 404
- POST /api/folders                 {uid, title} -> 200 folder | 409 uid taken
- GET  /api/datasources/uid/:uid    200 (never with secureJsonData) | 404
- POST /api/datasources             200 {datasource, id, message, name} | 409 name taken
- PUT  /api/datasources/uid/:uid    200 {datasource, id, message, name} | 404
- POST /api/dashboards/db           {dashboard, folderUid, overwrite, message} -> 200 | 400 | 412

Every other route answers 404. All but /api/health need `Authorization: Bearer <token>` (401).
Every request is recorded as (method, path, json body or None).
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Call = tuple[str, str, Any]


class FakeGrafana(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, token: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.token = token
        self.forbidden: set[tuple[str, str]] = set()  # (method, path) answered with 403
        self.calls: list[Call] = []
        self.folders: dict[str, dict] = {}
        self.datasources: dict[str, dict] = {}
        self.dashboards: dict[str, dict] = {}
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> "FakeGrafana":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()

    def route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if parts[:1] != ["api"]:
            return 404, {"message": "Not found"}
        handler = _ROUTES.get((method, *_shape(parts[1:])))
        if handler is None:
            return 404, {"message": "Not found"}
        return handler(self, parts[-1], body)


def _shape(parts: list[str]) -> tuple[str, ...]:
    """('folders', ':uid') style keys: the last segment of an item path is its uid."""
    collections = {("health",), ("folders",), ("datasources",), ("dashboards", "db")}
    if tuple(parts) in collections:
        return tuple(parts)
    return (*parts[:-1], ":uid")


def _health(fake: FakeGrafana, _uid: str, _body: Any) -> tuple[int, Any]:
    return 200, {"commit": "fake", "database": "ok", "version": "11.5.2"}


def _get_folder(fake: FakeGrafana, uid: str, _body: Any) -> tuple[int, Any]:
    if uid not in fake.folders:
        return 404, {"message": "folder not found", "status": "not-found"}
    return 200, fake.folders[uid]


def _post_folder(fake: FakeGrafana, _uid: str, body: dict) -> tuple[int, Any]:
    if not body.get("title"):
        return 400, {"message": "folder title cannot be empty"}
    if body.get("uid") in fake.folders:
        return 409, {"message": "a folder with the same uid already exists"}
    folder = {"id": len(fake.folders) + 1, "uid": body["uid"], "title": body["title"],
              "url": f"/dashboards/f/{body['uid']}/", "version": 1}
    fake.folders[body["uid"]] = folder
    return 200, folder


def _get_datasource(fake: FakeGrafana, uid: str, _body: Any) -> tuple[int, Any]:
    if uid not in fake.datasources:
        return 404, {"message": "Data source not found"}
    stored = dict(fake.datasources[uid])
    secure = stored.pop("secureJsonData", {}) or {}
    # Grafana never returns secrets, only which ones are set.
    return 200, {**stored, "secureJsonFields": dict.fromkeys(secure, True)}


def _post_datasource(fake: FakeGrafana, _uid: str, body: dict) -> tuple[int, Any]:
    if any(ds["name"] == body.get("name") for ds in fake.datasources.values()):
        return 409, {"message": "data source with the same name already exists"}
    uid = body.get("uid") or f"generated-{len(fake.datasources) + 1}"
    fake.datasources[uid] = {**body, "uid": uid, "id": len(fake.datasources) + 1}
    return 200, _datasource_answer(fake, uid, "Datasource added")


def _put_datasource(fake: FakeGrafana, uid: str, body: dict) -> tuple[int, Any]:
    if uid not in fake.datasources:
        return 404, {"message": "Data source not found"}
    fake.datasources[uid] = {**body, "uid": uid, "id": fake.datasources[uid]["id"]}
    return 200, _datasource_answer(fake, uid, "Datasource updated")


def _datasource_answer(fake: FakeGrafana, uid: str, message: str) -> dict:
    stored = {k: v for k, v in fake.datasources[uid].items() if k != "secureJsonData"}
    return {"datasource": stored, "id": stored["id"], "message": message, "name": stored["name"]}


def _post_dashboard(fake: FakeGrafana, _uid: str, body: dict) -> tuple[int, Any]:
    dashboard = body.get("dashboard")
    if not isinstance(dashboard, dict) or not dashboard.get("title"):
        return 400, {"message": "Dashboard title cannot be empty"}
    if body.get("folderUid") and body["folderUid"] not in fake.folders:
        return 400, {"message": "folder not found"}
    uid = dashboard.get("uid")
    old = fake.dashboards.get(uid)
    if old and not body.get("overwrite"):
        return 412, {"message": "A dashboard with the same uid already exists",
                     "status": "name-exists"}
    version = old["version"] + 1 if old else 1
    fake.dashboards[uid] = {"dashboard": dashboard, "folderUid": body.get("folderUid"),
                            "version": version}
    return 200, {"id": len(fake.dashboards), "uid": uid, "url": f"/d/{uid}/",
                 "status": "success", "version": version}


_ROUTES = {
    ("GET", "health"): _health,
    ("GET", "folders", ":uid"): _get_folder,
    ("POST", "folders"): _post_folder,
    ("GET", "datasources", "uid", ":uid"): _get_datasource,
    ("POST", "datasources"): _post_datasource,
    ("PUT", "datasources", "uid", ":uid"): _put_datasource,
    ("POST", "dashboards", "db"): _post_dashboard,
}


class _Handler(BaseHTTPRequestHandler):
    server: FakeGrafana

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")

    def do_PUT(self) -> None:
        self._answer("PUT")

    def do_DELETE(self) -> None:
        self._answer("DELETE")

    def _answer(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        fake = self.server
        fake.calls.append((method, self.path, body))
        if self.path != "/api/health" and (
                self.headers.get("Authorization") != f"Bearer {fake.token}"):
            status, answer = 401, {"message": "Unauthorized"}
        elif (method, self.path) in fake.forbidden:
            status, answer = 403, {"message": "You'll need additional permissions"}
        else:
            status, answer = fake.route(method, self.path, body)
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass
