"""`machikit grafana push`: put our data source, folder and dashboards into a running Grafana.

Only the documented HTTP API (https://grafana.com/docs/grafana/latest/developers/http_api/),
through grafana-client, in this order:

1. GET  /api/health                      (reachable? which version?)
2. GET  /api/folders/:uid                (404 -> POST /api/folders {uid, title})
3. GET  /api/datasources/uid/:uid        (404 -> POST /api/datasources,
                                          found -> PUT /api/datasources/uid/:uid)
4. POST /api/dashboards/db               (once per dashboard, overwrite: true)

Everything is looked up by a fixed uid first and dashboards carry stable uids, so running it
again updates in place and never creates a second copy.
"""

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import niquests.exceptions
from grafana_client import GrafanaApi
from grafana_client.client import GrafanaException, GrafanaTimeoutError, TokenAuth

from machikit.texts import say

TIMEOUT_S = 15.0
PUSH_MESSAGE = "machikit grafana push"

Report = Callable[[str], None]
# "[Errno 111] Connection refused", "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed…"
_REASON = re.compile(r"\[(?:Errno -?\d+|SSL[^\]]*)\][^'\"()]*|Failed to resolve '[^']*'")


class PushError(Exception):
    """One bilingual line for the user; the command exits with 2."""


@dataclass(frozen=True)
class Target:
    url: str
    token: str
    verify: bool = True


@dataclass(frozen=True)
class Content:
    """What we push: built by the dashboards module (machikit/grafana/dashboards.py)."""

    folder_uid: str
    folder_title: str
    datasource: dict[str, Any]
    dashboards: dict[str, dict[str, Any]]


def connect(target: Target) -> GrafanaApi:
    """A client for `target`; the URL may carry a sub-path (Grafana behind /grafana/)."""
    parts = urlsplit(target.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PushError(say("grafana_bad_url", url=target.url))
    prefix = parts.path.strip("/")
    return GrafanaApi(
        auth=TokenAuth(target.token),  # Authorization: Bearer <service-account token>
        host=parts.hostname,
        port=parts.port,
        # grafana-client builds "{protocol}://{host}/{prefix}api": the prefix needs its slash.
        url_path_prefix=prefix + "/" if prefix else "",
        protocol=parts.scheme,
        verify=target.verify,
        timeout=TIMEOUT_S,
    )


def push(api: GrafanaApi, content: Content, url: str, report: Report) -> int:
    """Run the four steps; returns the number of dashboards saved. Raises PushError."""
    try:
        _check_health(api, url, report)
        _ensure_folder(api, content, report)
        _ensure_datasource(api, content.datasource, report)
        for dashboard in content.dashboards.values():
            _save_dashboard(api, dashboard, content.folder_uid, report)
    except GrafanaException as err:
        raise PushError(_explain(err, url)) from err
    except niquests.exceptions.RequestException as err:
        # grafana-client passes connection and TLS errors through unwrapped.
        raise PushError(_explain_network(err, url)) from err
    report(say("grafana_push_done", count=len(content.dashboards), url=url))
    return len(content.dashboards)


def _check_health(api: GrafanaApi, url: str, report: Report) -> None:
    # /api/health needs no token, so a bad token shows up at the folder step (401).
    health = api.client.GET("/health") or {}
    report(say("grafana_connected", url=url, version=health.get("version", "?"),
               database=health.get("database", "?")))


def _ensure_folder(api: GrafanaApi, content: Content, report: Report) -> None:
    if _get_or_none(lambda: api.folder.get_folder(content.folder_uid)) is not None:
        report(say("grafana_folder_found", title=content.folder_title, uid=content.folder_uid))
        return
    api.folder.create_folder(content.folder_title, uid=content.folder_uid)
    report(say("grafana_folder_created", title=content.folder_title, uid=content.folder_uid))


def _ensure_datasource(api: GrafanaApi, model: dict[str, Any], report: Report) -> None:
    uid, name = model["uid"], model.get("name", model["uid"])
    if _get_or_none(lambda: api.datasource.get_datasource_by_uid(uid)) is None:
        api.datasource.create_datasource(model)
        report(say("grafana_datasource_created", name=name, uid=uid))
    else:
        # PUT replaces the whole data source, so the password is sent again every time:
        # Grafana never returns secureJsonData, we could not keep it otherwise.
        api.datasource.update_datasource_by_uid(uid, model)
        report(say("grafana_datasource_updated", name=name, uid=uid))


def _save_dashboard(api: GrafanaApi, dashboard: dict[str, Any], folder_uid: str,
                    report: Report) -> None:
    model = copy.deepcopy(dashboard)
    # The numeric id is per Grafana install; the uid is what identifies our dashboard.
    model["id"] = None
    api.dashboard.update_dashboard({
        "dashboard": model,
        "folderUid": folder_uid,
        "overwrite": True,
        "message": PUSH_MESSAGE,
    })
    report(say("grafana_dashboard_saved", title=model.get("title", ""), uid=model.get("uid")))


def _get_or_none(lookup: Callable[[], Any]) -> Any:
    """The lookup's answer, or None on 404 (not there yet); other errors go up."""
    try:
        return lookup()
    except GrafanaException as err:
        if err.status_code == 404:
            return None
        raise


def _explain(err: GrafanaException, url: str) -> str:
    cause = err.__cause__
    if isinstance(err, GrafanaTimeoutError) or err.status_code == 0:
        return say("grafana_unreachable", url=url, detail=cause or err.message)
    detail = _message(err)
    if err.status_code == 401:
        return say("grafana_bad_token")
    if err.status_code == 403:
        return say("grafana_forbidden", detail=detail)
    if err.status_code == 409:
        return say("grafana_conflict", detail=detail)
    return say("grafana_failed", status=err.status_code, detail=detail)


def _message(err: GrafanaException) -> str:
    response = err.response
    if isinstance(response, dict) and "message" in response:
        return str(response["message"])
    return str(err.message)


def _explain_network(err: Exception, url: str) -> str:
    if isinstance(err, niquests.exceptions.SSLError):
        return say("grafana_tls_failed", url=url, detail=_first_line(err))
    return say("grafana_unreachable", url=url, detail=_first_line(err))


def _first_line(err: Exception) -> str:
    """The operating system's or TLS library's own words, e.g. "[Errno 111] Connection refused".

    Connection errors arrive wrapped several times (niquests, urllib3, pool reprs).
    """
    text = str(err)
    found = _REASON.search(text)
    return (found.group(0) if found else text.strip().splitlines()[0])[:160].rstrip(" ,")
