"""A participant's phone opening the map from the label's QR code, run inside the phone's
network namespace: Debian's chromium through Playwright, a phone-sized screen.

    python -m tests.workshop.lan_phone URL SCREENSHOT.png DEVICE
Prints one JSON line: the page title, the live connection's state and whether the
device's marker is on the map.
"""

import json
import sys

from playwright.sync_api import sync_playwright

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, PHONE


def main(url: str, screenshot: str, device: str) -> int:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(**PHONE)
        page.goto(url, timeout=20_000)
        page.wait_for_function(
            "document.getElementById('connection').dataset.state === 'live'", timeout=20_000)
        marker = page.locator(f".leaflet-marker-icon[data-id='{device}']")
        marker.wait_for(timeout=60_000)
        page.wait_for_timeout(500)
        page.screenshot(path=screenshot)
        print(json.dumps({"title": page.title(),
                          "state": page.locator("#connection").get_attribute("data-state"),
                          "marker": marker.count(),
                          "popup": page.locator(".leaflet-popup-content").all_inner_texts()},
                         ensure_ascii=False))
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
