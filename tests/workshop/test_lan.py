"""The documented workshop path on a real network: the laptop, the boards and a phone are
separate hosts (network namespaces joined by a bridge, tests/workshop/lan.py), so nothing
works through 127.0.0.1 by accident.

roster → `workshop prepare` (devices, passwords, the embedded broker's files) →
`workshop serve` (finds 192.168.77.10 by itself) → `workshop flash` (the boards get that
address) → boards switched on in their own host (the real MicroPython unix port) → online
on the laptop's embedded broker → `workshop labels` → `workshop status` → a phone opens
the map over the LAN. Only USB discovery is replaced (tests/workshop/lan_flash.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from machikit.workshop import server_info
from tests.collector.helpers import unique_town, wait_until
from tests.conftest import REPO
from tests.flash.board_sim import BoardSim
from tests.workshop import lan as lan_module
from tests.workshop.lan import Host, Lan
from tests.workshop.test_workshop_e2e import compiled_fakes, power_on  # noqa: F401

pytestmark = [pytest.mark.services, pytest.mark.slow]

ROSTER = "名前,アプリ,公開\n山田 花子,snow,はい\n佐藤 一郎,printer,\n鈴木 次郎,snow,いいえ\n"
VENUE = "37.1275,138.7590"  # 十日町市役所: where the public gauge is shown


@pytest.fixture
def lan() -> Iterator[Lan]:
    if not lan_module.available():
        pytest.skip("needs root and iproute2 (ip netns)")
    with Lan() as network:
        yield network


def user_env() -> dict[str, str]:
    """The instructor's shell: no test-suite variables, the repo importable (helpers)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MACHIKIT_")}
    return {**env, "PYTHONPATH": str(REPO)}


def machikit(*args: str) -> list[str]:
    return [sys.executable, "-m", "machikit", *args]


class Output:
    """Collects a background process's lines as they come."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process, self.lines = process, []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)

    def text(self) -> str:
        return "\n".join(self.lines)


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def serve(laptop: Host, home: Path) -> tuple[subprocess.Popen[str], Output]:
    process = laptop.start(machikit("workshop", "serve"), cwd=home, env=user_env())
    output = Output(process)
    assert wait_until(lambda: output.count("Phones on the same Wi-Fi") == 1 or
                      process.poll() is not None, 60), output.text()
    assert process.poll() is None, output.text()
    return process, output


def test_boards_and_a_phone_on_the_lan_reach_the_workshop_laptop(
        lan: Lan, micropython: str, compiled_fakes: Path, tmp_path: Path) -> None:  # noqa: F811
    laptop, board_host, phone = lan.add("laptop", 10), lan.add("board", 21), lan.add("phone", 30)
    town = unique_town()
    home = tmp_path / "研修 2026"  # a staff laptop's folder: a space and Japanese
    home.mkdir()
    (home / "roster.csv").write_bytes(ROSTER.encode("cp932"))

    prepared = laptop.run(machikit("workshop", "prepare", "roster.csv", "--town", town,
                                   "--wifi-ssid", "workshop-ap", "--place", VENUE),
                          cwd=home, env=user_env(), timeout=120)
    assert prepared.returncode == 0, prepared.stderr
    devices = json.loads((home / "workshop" / "devices.json").read_text(encoding="utf-8"))
    assert devices["map_url"] == "http://192.168.77.10:8080/"  # found, not typed

    server, served = serve(laptop, home)
    boards = [BoardSim(micropython, tmp_path / f"board{n}") for n in range(3)]
    running: list[subprocess.Popen[str]] = [server]
    try:
        info = server_info.load(home / "workshop")
        assert info is not None and info.host == laptop.address, served.text()
        told = [line for line in served.lines if "Boards connect" in line or "Phones" in line]
        assert len(told) == 2 and all("192.168.77.10" in line for line in told), served.text()
        assert board_host.can_connect(laptop.address, 1883)
        assert phone.can_connect(laptop.address, 8080)
        assert not board_host.can_connect("127.0.0.1", 1883)  # a board's loopback is its own

        for board in boards:
            board.__enter__()
        flashing = laptop.start(
            [sys.executable, "-m", "tests.workshop.lan_flash", ",".join(b.path for b in boards),
             "workshop", "flash", "--wifi-password", "secret"], cwd=home, env=user_env())
        running.append(flashing)
        flashed = Output(flashing)
        assert wait_until(lambda: flashed.count("flashed. Unplug it") == 3, 180), flashed.text()
        for board in boards:
            config = json.loads((board.flash / "config.json").read_text(encoding="utf-8"))
            assert config["broker"] == {"host": laptop.address, "port": 1883, "tls": False}
        for board in boards:
            running.append(power_on(micropython, board.flash, compiled_fakes,
                                    tuple(board_host.command([]))))
        assert wait_until(lambda: flashed.count(" is online") == 3, 120), \
            flashed.text() + "\n" + served.text()

        status = laptop.run(machikit("workshop", "status", "--once"), cwd=home,
                            env=user_env(), timeout=60)
        assert "3 of 3 online" in status.stdout, status.stdout + status.stderr

        labels = laptop.run(machikit("workshop", "labels"), cwd=home, env=user_env(),
                            timeout=60)
        assert "http://192.168.77.10:8080/" in labels.stdout, labels.stderr

        shot = REPO / "test-artifacts" / "workshop-phone-on-the-lan.png"
        shot.parent.mkdir(exist_ok=True)
        opened = phone.run([sys.executable, "-m", "tests.workshop.lan_phone",
                            info.map_url + "#snow-01", str(shot), "snow-01"],
                           cwd=REPO, env=user_env(), timeout=120)
        assert opened.returncode == 0, opened.stdout + opened.stderr
        page = json.loads(opened.stdout.strip().splitlines()[-1])
        assert page["state"] == "live" and page["marker"] == 1, page
        assert shot.stat().st_size > 10_000  # what the participant sees: look at it
    finally:
        for process in running:
            stop(process)
        for board in boards:
            board.__exit__(None, None, None)


def test_plain_serve_stays_on_the_laptop(lan: Lan, tmp_path: Path) -> None:
    """`machikit serve` and the demo listen on 127.0.0.1 only: the LAN cannot reach them."""
    laptop, phone = lan.add("laptop", 10), lan.add("phone", 30)
    server = laptop.start(machikit("serve"), cwd=tmp_path, env=user_env())
    output = Output(server)
    try:
        assert wait_until(lambda: output.count("Public map and API") == 1, 60), output.text()
        probe = ("import socket; socket.create_connection(('127.0.0.1', 1883), 2); "
                 "socket.create_connection(('127.0.0.1', 8080), 2)")
        assert laptop.run(["python3", "-c", probe], timeout=30).returncode == 0
        assert not phone.can_connect(laptop.address, 1883)
        assert not phone.can_connect(laptop.address, 8080)
    finally:
        stop(server)
        time.sleep(0)


def test_a_firewall_on_the_laptop_is_named_with_the_fix_that_works(
        lan: Lan, tmp_path: Path) -> None:
    """The real ufw, enabled on the laptop only (its own /etc/ufw copy): serve names the
    exact commands, the phone is really blocked before them and gets in after them."""
    if not shutil.which("ufw"):
        pytest.skip("needs ufw (`machikit dev services up` installs it)")
    laptop, phone = lan.add("laptop", 10), lan.add("phone", 30)
    laptop.own_etc("ufw")
    assert laptop.run(["ufw", "--force", "enable"], timeout=60).returncode == 0
    server, served = serve(laptop, tmp_path)
    try:
        fixes = [line.strip() for line in served.lines if line.startswith("  sudo ufw")]
        assert fixes == ["sudo ufw allow 1883/tcp", "sudo ufw allow 8080/tcp"], served.text()
        assert not phone.can_connect(laptop.address, 8080)  # dropped, as the warning says
        for fix in fixes:
            assert laptop.run(fix.split()[1:], timeout=60).returncode == 0  # we are root
        assert phone.can_connect(laptop.address, 8080)
        assert phone.can_connect(laptop.address, 1883)
    finally:
        stop(server)
    server, served = serve(laptop, tmp_path)
    stop(server)
    assert not any("ufw" in line for line in served.lines), served.text()  # open: silence
