"""A workshop's network on one machine: Linux network namespaces joined by a bridge.

    access point (bridge, 192.168.77.1, the default gateway)
      ├─ laptop  192.168.77.10   the instructor's machine: `machikit workshop serve`
      ├─ board   192.168.77.21   participants' boards (the real MicroPython unix port)
      └─ phone   192.168.77.30   a participant's phone (Debian's chromium)

Each host has its own interfaces, routes and loopback, so 127.0.0.1 on a board is the
board itself, exactly as on real hardware, and nothing reaches the laptop unless it
listens on its LAN address. Needs root and iproute2 (`ip netns`). A host's /etc files
can be given their own copies under /etc/netns/<name>/ (ip netns exec binds them over
/etc), which keeps a firewall enabled on the laptop out of this machine's own config.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

SUBNET = "192.168.77"
GATEWAY = f"{SUBNET}.1"
ETC_NETNS = Path("/etc/netns")


def available() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass
class Host:
    lan: Lan
    name: str  # short: interface names are at most 15 characters
    address: str

    @property
    def netns(self) -> str:
        return f"{self.lan.prefix}-{self.name}"

    def command(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *argv]

    def run(self, argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(argv), capture_output=True, text=True,
                              **kwargs)  # type: ignore[call-overload]

    def start(self, argv: list[str], **kwargs: object) -> subprocess.Popen[str]:
        return subprocess.Popen(self.command(argv), stdout=subprocess.PIPE,  # type: ignore[call-overload]
                                stderr=subprocess.STDOUT, text=True, **kwargs)

    def can_connect(self, address: str, port: int, timeout: float = 2.0) -> bool:
        """A TCP connection from this host (a small Python run inside its namespace)."""
        probe = ("import socket,sys\n"
                 "try:\n"
                 f"    socket.create_connection(({address!r}, {port}), timeout={timeout})\n"
                 "except OSError:\n"
                 "    sys.exit(1)\n")
        return self.run(["python3", "-c", probe], timeout=timeout + 10).returncode == 0

    def own_etc(self, folder: str) -> Path:
        """A private copy of /etc/<folder> for this host only (ip netns exec mounts it)."""
        target = ETC_NETNS / self.netns / folder
        shutil.copytree(Path("/etc") / folder, target, symlinks=True)
        return target


@dataclass
class Lan:
    prefix: str = field(default_factory=lambda: f"mk{os.getpid() % 100000}")
    hosts: list[Host] = field(default_factory=list)

    @property
    def ap(self) -> str:
        return f"{self.prefix}-ap"

    def __enter__(self) -> Lan:
        ip("netns", "add", self.ap)
        ip("-n", self.ap, "link", "set", "lo", "up")
        ip("-n", self.ap, "link", "add", "br0", "type", "bridge")
        ip("-n", self.ap, "addr", "add", f"{GATEWAY}/24", "dev", "br0")
        ip("-n", self.ap, "link", "set", "br0", "up")
        return self

    def add(self, name: str, last_octet: int) -> Host:
        host = Host(self, name, f"{SUBNET}.{last_octet}")
        self.hosts.append(host)
        outer, inner = f"{self.prefix}{name[0]}a", f"{self.prefix}{name[0]}b"
        ip("netns", "add", host.netns)
        ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        ip("link", "set", outer, "netns", self.ap)
        ip("-n", self.ap, "link", "set", outer, "master", "br0", "up")
        ip("link", "set", inner, "netns", host.netns)
        ip("-n", host.netns, "link", "set", inner, "name", "eth0")
        ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
        ip("-n", host.netns, "link", "set", "eth0", "up")
        ip("-n", host.netns, "link", "set", "lo", "up")
        ip("-n", host.netns, "route", "add", "default", "via", GATEWAY)
        return host

    def __exit__(self, *exc: object) -> None:
        for host in self.hosts:
            subprocess.run(["ip", "netns", "del", host.netns], capture_output=True)
            shutil.rmtree(ETC_NETNS / host.netns, ignore_errors=True)
        subprocess.run(["ip", "netns", "del", self.ap], capture_output=True)

