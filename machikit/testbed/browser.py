"""Debian's programs that tests run on this machine itself: Chromium for the public
map's browser tests, ufw for the workshop's firewall test, openssl for the TLS tests.

Playwright drives it (its own browser download does not work offline), so
the package comes from Debian like every other test service. The servers live
in the Debian 13 root; the browser lives on the host because Playwright
starts it as a child process and talks to it over a pipe.
"""

import shutil
import time
from pathlib import Path

from machikit.testbed.layout import Layout
from machikit.testbed.rootfs import install_on_host
from machikit.texts import say

CHROMIUM = Path("/usr/bin/chromium")
# Without a Japanese font the screenshots show boxes instead of 日本語 (the tests still pass).
JAPANESE_FONT = Path("/usr/share/fonts/opentype/ipafont-gothic")


def install_host_tool(layout: Layout, package: str) -> None:
    """A Debian package whose program a test runs on this machine (in a namespace of its
    own), installed once."""
    if shutil.which(package) or not shutil.which("apt-get"):
        return
    _install(layout, package)


def _install(layout: Layout, package: str) -> None:
    print(say("testbed_installing", package=package), flush=True)
    started = time.monotonic()
    install_on_host(layout, package)
    print(say("testbed_installed", package=package, seconds=time.monotonic() - started),
          flush=True)


def install(layout: Layout) -> str:
    """The browser's path, installing Debian's packages when they are missing."""
    wanted = [package for package, path in (("chromium", CHROMIUM),
                                            ("fonts-ipafont-gothic", JAPANESE_FONT))
              if not path.exists()]
    if not wanted:
        return str(CHROMIUM)
    if not shutil.which("apt-get"):
        print(say("testbed_no_chromium"), flush=True)
        return str(CHROMIUM) if CHROMIUM.exists() else ""
    for package in wanted:
        _install(layout, package)
    return str(CHROMIUM)
