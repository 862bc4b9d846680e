"""The public map page: collector/web/index.html with the town's settings filled in.

The page gets its settings and texts inside the HTML (no extra request), and
every file it needs, Leaflet included, comes from this server: town intranets
often block CDNs.
"""

import hashlib
import html
import json
import re
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from collector.settings import Settings
from machikit.texts import TEXTS, say

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
router = APIRouter(include_in_schema=False)
DEFAULT_TITLE = ("{town} の運行状況", "{town}: live map")


def default_town(request: Request) -> str | None:
    settings: Settings = request.app.state.settings
    if settings.map.town:
        return settings.map.town
    if settings.town != "+":
        return settings.town
    towns = request.app.state.hub.snapshot.town_names()
    return towns[0] if towns else None


def page_config(settings: Settings, town: str) -> dict:
    m = settings.map
    ja, en = TEXTS.get("map_title", DEFAULT_TITLE)
    title = (m.title or ja, m.title_en or m.title or en)
    return {
        "town": town,
        "api": f"/api/v1/towns/{town}",
        "static": "/static",
        "title": {"ja": title[0].format(town=town), "en": title[1].format(town=town)},
        "tiles": {"url": m.tile_url, "attribution": m.tile_attribution,
                  "max_zoom": m.tile_max_zoom},
        "center": list(m.center) if m.center else None,
        "zoom": m.zoom,
        "texts": {key: list(value) for key, value in TEXTS.items() if key.startswith("map_")},
    }


def asset_version() -> str:
    """A short hash of the page's files: `?v=` in their URLs, so a phone never keeps
    yesterday's scripts (cached for a day) after an upgrade."""
    digest = hashlib.blake2b(digest_size=6)
    for path in sorted(WEB_DIR.rglob("*.*")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


ASSETS = re.compile(r'"(/static/[^"?]+\.(?:js|css))"')


def render(settings: Settings, town: str) -> str:
    config = page_config(settings, town)
    # "</" cannot end the script element early once escaped this way
    data = json.dumps(config, ensure_ascii=False).replace("</", "<\\/")
    template = (WEB_DIR / "index.html").read_text(encoding="utf-8")
    template = ASSETS.sub(lambda m: f'"{m[1]}?v={VERSION}"', template)
    return (template
            .replace("<!--machikit:config-->",
                     f'<script id="machikit-config" type="application/json">{data}</script>')
            .replace("<!--machikit:title-->", html.escape(config["title"]["ja"])))


VERSION = asset_version()


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> HTMLResponse:
    town = default_town(request)
    if town is None:
        return not_found("api_no_public_devices")
    return map_page(request, town)


@router.get("/map/{town}", response_class=HTMLResponse)
def map_page(request: Request, town: str) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    if not request.app.state.hub.snapshot.town_exists(town):
        return not_found("api_no_town")
    return HTMLResponse(render(settings, town), headers={"Cache-Control": "public, max-age=60"})


def not_found(key: str) -> HTMLResponse:
    """A short page in both languages; it never repeats the address asked for."""
    return HTMLResponse(f'<!doctype html><html lang="ja"><meta charset="utf-8">'
                        f"<p>{html.escape(say(key))}</p>", status_code=404)


@router.get("/map")
def map_redirect() -> RedirectResponse:
    return RedirectResponse("/")
