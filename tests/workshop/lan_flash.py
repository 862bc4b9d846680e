"""`machikit workshop flash` as the instructor runs it, with USB discovery replaced:
a pseudo-terminal has no USB vendor and product id, so the given pty paths are listed
as plugged-in Pico W boards. Everything else is the real command.

    python -m tests.workshop.lan_flash /dev/pts/3,/dev/pts/4 workshop flash --wifi-password …
"""

import sys

from machikit import cli, flash
from machikit.flash.boards import BoardPort


def main() -> int:
    paths = sys.argv[1].split(",")
    plugged = [BoardPort(path, 0x2E8A, 0x0005, f"E66138{n:010d}", "pico")
               for n, path in enumerate(paths)]
    flash.find_boards = lambda: plugged  # type: ignore[assignment]
    return cli.main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
