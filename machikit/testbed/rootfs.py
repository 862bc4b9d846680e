"""Build and cache the Debian 13 (trixie) root the servers run from.

Debian 12 has no TimescaleDB and an older Mosquitto; trixie has all of it as
packages, so debootstrap (≈ 20 s) plus one apt-get (≈ 10 s) gives the same
versions on every machine. The root is reused until the package list changes.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

from machikit.testbed.layout import Layout
from machikit.testbed.system import ROOT_ENV, TestbedError, chroot_cmd, tail

SUITE = "trixie"
PACKAGES = (
    "postgresql-17", "postgresql-17-timescaledb",
    "mosquitto", "mosquitto-clients", "micropython",
    # The client tests under Debian 13's Python 3.13 (client_python.py): venv needs
    # ensurepip (python3-venv), pip fetches the lock over HTTPS (ca-certificates); the
    # Pi tests verify their systemd units (systemd-analyze), the workshop LAN tests build
    # network namespaces (iproute2) and enable a firewall on the laptop (ufw). ≈ 50 MB.
    "python3", "python3-venv", "ca-certificates", "systemd", "iproute2", "ufw",
)
MARKER = ".machikit-testbed.json"  # written last, inside the root: present = complete


def wanted_marker() -> dict[str, object]:
    return {"suite": SUITE, "variant": "minbase", "packages": sorted(PACKAGES)}


def is_current(root: Path) -> bool:
    try:
        return bool(json.loads((root / MARKER).read_text(encoding="utf-8")) == wanted_marker())
    except (OSError, ValueError):
        return False


def mirror() -> str:
    return os.environ.get("MACHIKIT_DEBIAN_MIRROR") or "http://deb.debian.org/debian"


def build(layout: Layout) -> None:
    """Build into root.build, then swap it in. The caller stops servers first."""
    discard(layout.build)
    layout.build_log.write_bytes(b"")
    _ensure_debootstrap(layout)
    _logged(layout, "debootstrap", [
        "debootstrap", "--variant=minbase", SUITE, str(layout.build), mirror()])
    _prepare(layout.build)
    _install(layout)
    (layout.build / MARKER).write_text(json.dumps(wanted_marker(), indent=2) + "\n",
                                      encoding="utf-8", newline="\n")
    layout.build.chmod(0o755)  # the MicroPython wrapper runs as any user
    old = layout.base / "root.old"
    if layout.root.exists():
        discard(old)
        layout.root.rename(old)
    layout.build.rename(layout.root)
    discard(old)


def _ensure_debootstrap(layout: Layout) -> None:
    if not shutil.which("debootstrap"):
        install_on_host(layout, "debootstrap")


def install_on_host(layout: Layout, package: str) -> None:
    """apt-get install one package on this machine (update the lists only if needed)."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", package]
    if not _logged(layout, f"apt-get install {package}", install, env, check=False):
        _logged(layout, "apt-get update", ["apt-get", "update"], env)
        _logged(layout, f"apt-get install {package}", install, env)


def _prepare(root: Path) -> None:
    # Maintainer scripts must not start daemons inside the root during the build.
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\n# machikit test bed: never start services here\nexit 101\n",
                      encoding="utf-8", newline="\n")
    policy.chmod(0o755)
    # postgresql-common would initdb a "main" cluster we never use (time and 40 MB).
    conf = root / "etc/postgresql-common/createcluster.d"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "machikit.conf").write_text("create_main_cluster = false\n", encoding="utf-8",
                                       newline="\n")


def _install(layout: Layout) -> None:
    root = layout.build
    apt = ["apt-get", "-y", "-o", "Dpkg::Use-Pty=0"]
    env = {**ROOT_ENV, "DEBIAN_FRONTEND": "noninteractive"}
    # debootstrap leaves its package lists behind; update only if they are gone.
    if not any((root / "var/lib/apt/lists").glob("*_Packages")):
        _logged(layout, "apt-get update", chroot_cmd(root, [*apt, "update"]), env)
    _logged(layout, "apt-get install", chroot_cmd(
        root, [*apt, "install", "--no-install-recommends", *PACKAGES]), env)
    _logged(layout, "apt-get clean", chroot_cmd(root, [*apt, "clean"]), env)
    for item in (root / "var/lib/apt/lists").glob("*"):
        if item.is_file():
            item.unlink()


def _logged(
    layout: Layout, step: str, argv: list[str], env: dict[str, str] | None = None,
    check: bool = True,
) -> bool:
    """Run one build step with output into build.log (a cold build is chatty)."""
    with open(layout.build_log, "a", encoding="utf-8", newline="\n") as log:
        log.write(f"\n### {step}: {' '.join(argv)}\n")
        log.flush()
        result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env, cwd="/", check=False)
    if result.returncode and check:
        raise TestbedError(f"{step} (exit {result.returncode})", tail(layout.build_log))
    return result.returncode == 0


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve())
    found = []
    for line in Path("/proc/self/mountinfo").read_text(encoding="utf-8").splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            found.append(point)
    return sorted(found, reverse=True)  # deepest first


def discard(path: Path) -> None:
    """Delete a root. An interrupted debootstrap can leave /proc or /sys mounted
    inside it; rmtree would then wander into the host's /sys, so unmount first
    and refuse if anything stays mounted."""
    if not path.exists():
        return
    for point in _mounts_under(path):
        subprocess.run(["umount", point], check=False)
    if left := _mounts_under(path):
        raise TestbedError(f"still mounted, not deleting {path}", "\n".join(left))
    shutil.rmtree(path)
