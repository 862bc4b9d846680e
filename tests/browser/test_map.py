"""The public map in a real browser, against the real server (no mocked API).

Every tab is cut off from the internet (conftest.Visit): the map must work
inside a town intranet that blocks CDNs and the GSI tiles.
"""

import re
import time

import pytest
from playwright.sync_api import Response

from machikit.texts import TEXTS
from tests.browser.conftest import (
    DESKTOP,
    HIDDEN,
    HOME,
    PHONE,
    PUBLIC,
    TOWN,
    MapServer,
    OpenVisit,
)

MARKER = ".leaflet-marker-icon[data-id='{}']"


def ja(key: str) -> str:
    return TEXTS[key][0]


def en(key: str) -> str:
    return TEXTS[key][1]


def test_page_works_with_every_external_request_blocked(visit: OpenVisit) -> None:
    v = visit(DESKTOP)
    v.open()
    for name, label in PUBLIC.items():
        marker = v.page.locator(MARKER.format(name))
        marker.wait_for()
        assert label in marker.inner_text()
        assert label in (marker.get_attribute("aria-label") or "")
        assert marker.get_attribute("tabindex") == "0"  # reachable by keyboard
    # The tiles were asked for, refused, and the page says so.
    notice = v.page.locator("#tile-notice")
    notice.wait_for(state="visible")
    assert notice.inner_text() == ja("map_tiles_failed")
    assert any("cyberjapandata.gsi.go.jp" in url for url in v.blocked)
    assert all(not url.startswith(v.base_url) for url in v.blocked)
    # Leaflet comes from our own server, not from a CDN.
    assert v.page.evaluate("L.version") == "1.9.4"
    # The stall's last fix is 5 minutes old: greyed, with its age, never as if live.
    stall = v.page.locator(MARKER.format("stall-01") + " .mk")
    assert "mk-stale" in (stall.get_attribute("class") or "")
    assert re.search(r"\d+分前", stall.inner_text())
    v.page.wait_for_function("() => document.getElementById('connection').dataset.state === 'live'")
    assert v.page.locator("#connection").inner_text() == ja("map_conn_live")
    v.screenshot("desktop-map")


def test_a_new_position_moves_the_bus_within_2_seconds(
        visit: OpenVisit, map_server: MapServer) -> None:
    v = visit(DESKTOP)
    v.open()
    v.page.wait_for_function("() => document.getElementById('connection').dataset.state === 'live'")
    latencies = []
    for step in range(1, 4):
        lat, lon = HOME[0] + 0.001 * step, HOME[1] + 0.0015 * step
        before = v.page.locator(MARKER.format("bus-01")).evaluate("e => e.style.transform")
        started = time.monotonic()
        map_server.move("bus-01", lat, lon, heading=30.0 * step)
        # Leaflet has the new position and the marker's element has moved on screen.
        v.page.wait_for_function(
            """([lat, lon, before]) => {
                 const item = machikitMap.state.items.get('bus-01');
                 const at = item && item.marker && item.marker.getLatLng();
                 const element = document.querySelector("[data-id='bus-01']");
                 return at && Math.abs(at.lat - lat) < 1e-6 && Math.abs(at.lng - lon) < 1e-6
                   && element.style.transform !== before;
               }""", arg=[lat, lon, before], timeout=5000, polling=20)
        latencies.append(time.monotonic() - started)
    print(f"\npublish → marker moved: {', '.join(f'{s * 1000:.0f} ms' for s in latencies)}")
    assert max(latencies) < 2.0
    heading = v.page.locator(MARKER.format("bus-01") + " .mk-heading").get_attribute("style")
    assert "rotate(90deg)" in (heading or "")


def test_private_devices_and_the_printer_buzzer_never_reach_the_browser(
        visit: OpenVisit, map_server: MapServer) -> None:
    v = visit(DESKTOP)
    bodies: list[str] = []
    responses: list[Response] = []
    v.page.on("response", lambda response: responses.append(response))
    # The live stream never ends, so its messages are read from chromium's
    # DevTools protocol as they arrive.
    cdp = v.context.new_cdp_session(v.page)
    cdp.send("Network.enable")
    stream_messages: list[str] = []
    cdp.on("Network.eventSourceMessageReceived", lambda e: stream_messages.append(e["data"]))
    v.open()
    v.page.wait_for_function("() => document.getElementById('connection').dataset.state === 'live'")
    # Both keep sending while the page watches.
    map_server.move("secret-bus", HOME[0] + 0.002, HOME[1] + 0.002)
    map_server.move("bus-01", HOME[0] + 0.0005, HOME[1] + 0.0005)
    map_server.send("printer-1", "event", {"v": 1, "seq": 99, "t": int(time.time() * 1000),
                                           "name": "paper_alarm"})
    for _ in range(50):  # Playwright delivers events while it waits, not during time.sleep
        if any("bus-01" in m for m in stream_messages[1:]):
            break
        v.page.wait_for_timeout(100)
    assert any("bus-01" in m for m in stream_messages[1:]), "no live update arrived"
    # Open a popup and the snow gauge, so track and history requests happen too.
    v.page.locator(MARKER.format("bus-01")).click()
    v.page.locator(MARKER.format("snow-01")).click()
    v.page.locator(".pop-history table").wait_for(state="attached")
    v.page.wait_for_load_state("networkidle")
    for response in responses:
        if "/live" in response.url:
            continue  # read above, message by message
        bodies.append(response.url + "\n" + response.body().decode("utf-8", "replace"))
    assert any("/vehicles/bus-01/track" in b for b in bodies)
    assert any("/sensors/snow-01/history" in b for b in bodies)
    assert stream_messages and "bus-01" in stream_messages[0]
    everything = bodies + stream_messages + [v.page.content()]
    for name, label in HIDDEN.items():
        for text in everything:
            assert name not in text, f"{name} reached the browser: {text[:200]}"
            assert label not in text, f"{label} reached the browser: {text[:200]}"


def test_japanese_first_and_an_english_switch(visit: OpenVisit) -> None:
    v = visit(DESKTOP)
    v.open()
    page = v.page
    title = ja("map_title").format(town=TOWN)
    assert page.evaluate("document.documentElement.lang") == "ja"
    assert page.title() == title
    assert page.locator("h1").inner_text() == title
    assert page.locator("#list-toggle").inner_text() == ja("map_list")
    assert page.locator("#lang-switch").inner_text() == ja("map_lang_switch")  # "English"
    assert ja("map_kind_bus") in page.locator("#list-panel").inner_text()
    assert "秒前" in page.locator("#list-panel").inner_text()

    page.locator("#lang-switch").click()
    assert page.evaluate("document.documentElement.lang") == "en"
    assert page.locator("h1").inner_text() == en("map_title").format(town=TOWN)
    assert page.locator("#list-toggle").inner_text() == en("map_list")
    panel = page.locator("#list-panel").inner_text()
    assert en("map_kind_garbage_truck") in panel and "Updated" in panel
    assert "秒前" not in panel and "分前" not in panel
    marker_label = page.locator(MARKER.format("bus-01")).get_attribute("aria-label") or ""
    assert en("map_kind_bus") in marker_label
    assert page.locator(".leaflet-control-zoom-in").get_attribute("title") == en("map_zoom_in")
    v.screenshot("desktop-english")

    page.reload()   # the choice is kept on this phone
    page.wait_for_selector(MARKER.format("bus-01"))
    assert page.locator("#list-toggle").inner_text() == en("map_list")
    page.goto(v.base_url + "/?lang=ja")   # and the address can ask for a language
    page.wait_for_selector(MARKER.format("bus-01"))
    assert page.locator("#list-toggle").inner_text() == ja("map_list")

    other = visit(DESKTOP)   # a fresh phone, from a link with ?lang=en
    other.open(f"/map/{TOWN}?lang=en")
    assert other.page.locator("#lang-switch").inner_text() == en("map_lang_switch")  # "日本語"
    assert other.page.locator("#lang-switch").get_attribute("lang") == "ja"


def test_phone_layout_and_the_list_by_keyboard(visit: OpenVisit) -> None:
    v = visit(PHONE)
    v.open()
    page = v.page
    page.locator("#tile-notice").wait_for(state="visible")
    v.screenshot("phone-map")
    no_sideways_scroll = """() => document.documentElement.scrollWidth <= window.innerWidth
        && document.body.scrollWidth <= window.innerWidth"""
    assert page.evaluate(no_sideways_scroll)
    assert page.locator("#list-panel").is_hidden()   # a phone starts with the map

    # Keyboard only: Tab to the list button, open it, choose the bus.
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "list-toggle":
            break
    assert page.evaluate("document.activeElement.id") == "list-toggle"
    page.keyboard.press("Enter")
    assert page.locator("#list-panel").is_visible()
    assert page.locator("#list-toggle").get_attribute("aria-expanded") == "true"
    assert page.evaluate("document.activeElement.id") == "list-title"
    assert page.evaluate(no_sideways_scroll)
    headings = page.locator("#list-panel section:not([hidden]) h3").all_inner_texts()
    assert headings == ["バス (1)", "ごみ収集車 (1)", "屋台 (1)", "積雪計 (1)"]
    v.screenshot("phone-list")

    page.keyboard.press("Tab")   # the close button
    page.keyboard.press("Tab")   # the first row: the bus
    focused = page.evaluate("document.activeElement.textContent")
    assert PUBLIC["bus-01"] in focused and ja("map_show_on_map") in focused
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"   # a visible focus ring
    page.keyboard.press("Enter")
    assert page.locator("#list-panel").is_hidden()   # the map is back
    popup = page.locator(".leaflet-popup")
    popup.wait_for()
    assert PUBLIC["bus-01"] in popup.inner_text()
    assert "km/h" in popup.inner_text()
    popup.get_by_text(ja("map_track")).wait_for()   # the track came, the popup grew
    assert page.evaluate("document.activeElement.closest('.leaflet-popup') !== null")
    assert page.locator(".leaflet-overlay-pane path.track").count() == 1
    page.keyboard.press("Escape")
    popup.wait_for(state="detached")
    assert page.evaluate("document.activeElement.dataset.id") == "bus-01"  # back on its marker
    assert page.evaluate(no_sideways_scroll)


def test_snow_gauge_badge_popup_and_history(visit: OpenVisit, map_server: MapServer) -> None:
    v = visit(PHONE)
    v.open()
    page = v.page
    marker = page.locator(MARKER.format("snow-01"))
    assert marker.locator(".mk-badge").inner_text() == "35 cm"
    marker.click()
    popup = page.locator(".leaflet-popup")
    popup.locator(".pop-history svg polyline").wait_for()
    text = popup.inner_text()
    assert PUBLIC["snow-01"] in text
    assert "35 cm" in text and "-4.5 °C" in text
    assert ja("map_reference_note") in text
    assert "最終更新" in text
    # The chart is for the eyes; the same numbers are in a table.
    assert popup.locator("svg.chart").get_attribute("aria-hidden") == "true"
    page.wait_for_timeout(500)   # the popup's fade-in and the map's pan
    v.screenshot("phone-snow-gauge")
    popup.locator("summary").click()
    rows = popup.locator("table tbody tr")
    rows.first.wait_for()
    # The open table scrolls inside the popup; the popup stays inside the map.
    page.wait_for_timeout(300)
    map_box, popup_box = page.locator("#map").bounding_box(), popup.bounding_box()
    assert map_box and popup_box and popup_box["y"] >= map_box["y"]
    assert 20 <= rows.count() <= 25
    values = [float(r.split("\t")[-1].split()[0]) for r in rows.all_inner_texts()]
    assert values == sorted(values, reverse=True)   # newest first, and the snow grew
    assert min(values) >= 30.0 and max(values) <= 35.0
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    v.screenshot("phone-snow-table")
    history = map_server.get_json(
        f"/api/v1/towns/{TOWN}/sensors/snow-01/history?sensor=snow_depth&hours=24&bucket=3600")
    assert history["quality"] == "reference" and rows.count() == len(history["points"])


def test_a_label_qr_link_opens_that_device(visit: OpenVisit) -> None:
    """Workshop labels carry the map URL + #<device>: the page opens that device's popup."""
    v = visit(PHONE)
    v.open("/#snow-01")
    popup = v.page.locator(".leaflet-popup")
    popup.wait_for()
    assert PUBLIC["snow-01"] in popup.inner_text()
    v.page.evaluate("window.location.hash = 'stall-01'")
    v.page.wait_for_function(
        "() => document.querySelector('.leaflet-popup') && document.querySelector('.leaflet-popup')"
        ".innerText.includes(" + repr(PUBLIC["stall-01"]) + ")")


@pytest.mark.slow
def test_without_the_live_stream_the_page_polls_and_reconnects(
        visit: OpenVisit, map_server: MapServer) -> None:
    v = visit(PHONE)
    page = v.page
    page.route("**/live", lambda route: route.abort())   # a proxy that kills the stream
    v.open()
    state = "document.getElementById('connection').dataset.state"
    page.wait_for_function(f"() => {state} === 'down'")
    assert page.locator("#connection").inner_text() == ja("map_conn_down")
    assert page.locator("#connection").get_attribute("aria-live") == "polite"
    # After 10 s without a stream the page asks every 10 s: the bus still moves.
    page.wait_for_function(f"() => {state} === 'polling'", timeout=20_000)
    assert page.locator("#connection").inner_text() == ja("map_conn_polling")
    lat, lon = HOME[0] - 0.002, HOME[1] + 0.003
    map_server.move("bus-01", lat, lon)
    page.wait_for_function(
        """([lat, lon]) => {
             const at = machikitMap.state.items.get('bus-01').marker.getLatLng();
             return Math.abs(at.lat - lat) < 1e-6 && Math.abs(at.lng - lon) < 1e-6;
           }""", arg=[lat, lon], timeout=15_000)
    v.screenshot("phone-polling")
    # The stream comes back by itself, and polling stops.
    page.unroute("**/live")
    page.wait_for_function(f"() => {state} === 'live'", timeout=20_000)
    assert page.locator("#connection").inner_text() == ja("map_conn_live")
    assert page.evaluate("machikitMap.state.live") is True
