"""Where boards and phones find a laptop or server on the local network (workshop, flash).

127.0.0.1 means "this machine" to everyone: to a board it is the board itself. So
boards and phones need the laptop's address on the local network, and the servers
must listen on every interface (0.0.0.0), not only on loopback.
"""

import contextlib
import socket

EVERY_INTERFACE = "0.0.0.0"
# TEST-NET-1 (RFC 5737): never answers. Connecting a UDP socket sends nothing; it only
# asks the OS which interface and source address the route out would use.
PROBE = ("192.0.2.1", 9)


def lan_address() -> str | None:
    """This machine's IPv4 address on its network, or None if it has none."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(PROBE)
        address = str(probe.getsockname()[0])
        if usable(address):
            return address
    # No default route (an access point without internet): ask the host name instead.
    return next(iter(host_addresses()), None)


def host_addresses() -> list[str]:
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        return []
    return sorted({str(info[4][0]) for info in infos if usable(str(info[4][0]))})


def usable(address: str) -> bool:
    """Reachable from another machine: not loopback, not unset, not link-local guesswork."""
    return not (address.startswith(("127.", "0.", "169.254.")) or address == "")


def is_loopback_name(host: str) -> bool:
    """A broker address that a board would take to mean itself."""
    return host.lower() in ("localhost", "::1") or host.startswith("127.") or host == "0.0.0.0"
