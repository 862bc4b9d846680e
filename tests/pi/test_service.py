"""pi/service.py into a temporary --root: the unit, the example config (0600), a second
install changing nothing, uninstall, and `systemd-analyze verify` when it is there."""

import argparse
import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from pi import config, service

PYTHON = "/opt/machikit/venv/bin/python"


def install(root: Path, job: str = "printer", **options: object) -> list[str]:
    said: list[str] = []
    assert service.install_job(job, root=root, python=PYTHON, out=said.append,  # type: ignore[arg-type]
                           **options) == 0
    return said


def unit_file(root: Path, job: str = "printer") -> Path:
    return root / "etc/systemd/system" / f"machikit-{job}.service"


def parse(path: Path) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    unit.read(path)
    return unit


def test_install_writes_the_unit(tmp_path: Path) -> None:
    said = install(tmp_path)
    unit = parse(unit_file(tmp_path))
    run = unit["Service"]
    assert run["Type"] == "simple"
    assert run["ExecStart"] == (f"{PYTHON} -m machikit pi run printer "
                                "--config /etc/machikit/printer.toml")
    assert (run["Restart"], run["RestartSec"]) == ("on-failure", "5")
    assert (run["User"], run["SupplementaryGroups"]) == ("machikit", "gpio dialout")
    assert run["StateDirectory"] == "machikit" and run["WorkingDirectory"] == "/var/lib/machikit"
    assert run["StandardOutput"] == run["StandardError"] == "journal"
    assert run["NoNewPrivileges"] == "yes" and run["ProtectSystem"] == "full"
    for hides_devices in ("PrivateDevices", "DevicePolicy", "DeviceAllow", "ProtectClock",
                          "ProtectKernelTunables", "DynamicUser"):
        assert hides_devices not in run
    assert "network-online" not in unit["Unit"]["After"]  # starts without a network
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    assert "GPIOZERO_PIN_FACTORY" not in unit_file(tmp_path).read_text()
    # --root: nothing started; the commands are printed, after what to fill in.
    assert any("[device]" in line and "town" in line for line in said)
    assert "  sudo systemctl enable --now machikit-printer.service" in said


def test_example_config_is_private(tmp_path: Path) -> None:
    install(tmp_path, "snow")
    path = tmp_path / "etc/machikit/snow.toml"
    assert path.stat().st_mode & 0o777 == 0o600  # it holds the broker password
    assert path.read_text(encoding="utf-8") == config.example("snow")


def test_second_install_keeps_the_config_and_rewrites_the_same_unit(tmp_path: Path) -> None:
    install(tmp_path)
    first = unit_file(tmp_path).read_bytes()
    path = tmp_path / "etc/machikit/printer.toml"
    edited = path.read_text().replace('pin_factory = ""', 'pin_factory = "lgpio"')
    path.write_text(edited)
    said = install(tmp_path)
    assert path.read_text() == edited
    assert any("Kept the existing config" in line for line in said)
    again = unit_file(tmp_path).read_text()
    assert "Environment=GPIOZERO_PIN_FACTORY=lgpio\n" in again
    assert again.replace("Environment=GPIOZERO_PIN_FACTORY=lgpio\n", "") == first.decode()
    install(tmp_path)
    assert unit_file(tmp_path).read_text() == again  # idempotent


def test_user_option_and_a_python_path_with_spaces(tmp_path: Path) -> None:
    said: list[str] = []
    service.install_job("gps", root=tmp_path, user="tracker", python="/opt/my venv/bin/python",
                    out=said.append)
    run = parse(unit_file(tmp_path, "gps"))["Service"]
    assert run["User"] == "tracker"
    assert run["ExecStart"].startswith('"/opt/my venv/bin/python" -m machikit pi run gps')


def test_uninstall_keeps_config_and_data(tmp_path: Path) -> None:
    install(tmp_path)
    said: list[str] = []
    assert service.uninstall_job("printer", root=tmp_path, out=said.append) == 0
    assert not unit_file(tmp_path).exists()
    assert (tmp_path / "etc/machikit/printer.toml").exists()
    assert any("kept" in line for line in said)
    said.clear()
    assert service.uninstall_job("printer", root=tmp_path, out=said.append) == 0
    assert any("not installed" in line for line in said)


def test_unknown_job(tmp_path: Path) -> None:
    said: list[str] = []
    assert service.install_job("bus", root=tmp_path, out=said.append) == 2
    assert "printer" in said[0] and not (tmp_path / "etc").exists()


def test_command_line_arguments(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    service.add_install_arguments(parser)
    args = parser.parse_args(["snow", "--root", str(tmp_path), "--user", "snow", "--no-start"])
    assert (args.job, args.root, args.user, args.no_start) == ("snow", tmp_path, "snow", True)
    assert service.install(args) == 0
    assert unit_file(tmp_path, "snow").exists()
    parser = argparse.ArgumentParser()
    service.add_uninstall_arguments(parser)
    assert service.uninstall(parser.parse_args(["snow", "--root", str(tmp_path)])) == 0


@pytest.mark.parametrize("job", ["printer", "snow", "gps"])
def test_systemd_analyze_verify(tmp_path: Path, job: str) -> None:
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("systemd-analyze is not installed")
    said: list[str] = []
    service.install_job(job, root=tmp_path, python=shutil.which("python3") or "/usr/bin/python3",
                    out=said.append)
    done = subprocess.run([analyze, "verify", str(unit_file(tmp_path, job))],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"machikit-{job}" not in done.stderr, done.stderr  # no warnings about our unit
