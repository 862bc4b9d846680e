"""Debian's Chromium on this machine, for the public map's browser tests.

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


def install(layout: Layout) -> str:
    """The browser's path, installing Debian's package when it is missing."""
    if CHROMIUM.exists():
        return str(CHROMIUM)
    if not shutil.which("apt-get"):
        print(say("testbed_no_chromium"), flush=True)
        return ""
    print(say("testbed_installing", package="chromium"), flush=True)
    started = time.monotonic()
    install_on_host(layout, "chromium")
    print(say("testbed_installed", package="chromium", seconds=time.monotonic() - started),
          flush=True)
    return str(CHROMIUM)
