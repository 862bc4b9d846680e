"""`machikit pi install <job>` / `uninstall <job>`: one command to a running systemd service.

install writes /etc/systemd/system/machikit-<job>.service, an example
/etc/machikit/<job>.toml when there is none (mode 0600: it holds the broker password),
then `systemctl daemon-reload` + `enable --now`. With --root DIR it only writes the
files under DIR (an SD-card image being prepared), and prints what to run on the Pi.
Running it again is safe: the unit is rewritten, an existing config is kept.
"""

import argparse
import contextlib
import grp
import os
import pwd
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

from machikit.texts import say
from pi import config as jobconfig
from pi.config import ConfigError

UNIT_DIR = Path("/etc/systemd/system")
DEFAULT_USER = "machikit"
GROUPS = ("gpio", "dialout")  # gpio: /dev/gpiochip* and /dev/gpiomem; dialout: /dev/tty*
DESCRIPTIONS = {
    "printer": "printer buzzer / 取り忘れブザー",
    "snow": "snow-depth gauge / 積雪計",
    "gps": "GPS tracker / GPS 追跡",
}
Say = Callable[[str], None]


def unit_name(job: str) -> str:
    return f"machikit-{job}.service"


def unit_text(job: str, user: str, python: str, groups: tuple[str, ...] = GROUPS,
              pin_factory: str = "") -> str:
    config_file = jobconfig.config_path(job)
    state = jobconfig.STATE_DIR
    env = f"Environment=GPIOZERO_PIN_FACTORY={pin_factory}\n" if pin_factory else ""
    return f"""\
# Written by `machikit pi install {job}`: run that again instead of editing this file.
[Unit]
Description=machikit {job}: {DESCRIPTIONS[job]}
# Only network.target (stop before the network goes down), not network-online.target
# or time-sync.target: every job keeps unsent messages in its outbox and sends
# "sync": false until the clock is set, and a GPS tracker or a printer buzzer must
# start in a bus depot or a town hall whose network is down.
After=network.target

[Service]
Type=simple
User={user}
SupplementaryGroups={" ".join(groups)}
ExecStart={_quote(python)} -m machikit pi run {job} --config {config_file}
# lgpio (Pi 5, Bookworm) makes its notification files in the working directory.
WorkingDirectory={state}
StateDirectory={state.name}
StateDirectoryMode=0750
Environment=PYTHONUNBUFFERED=1
{env}Restart=on-failure
RestartSec=5
StandardOutput=journal
StandardError=journal
SyslogIdentifier=machikit-{job}
UMask=0077
# Hardening that leaves /dev alone (no PrivateDevices, DevicePolicy or ProtectClock):
# gpiozero needs /dev/gpiochip* and /dev/gpiomem, the GPS job /dev/tty*, and the
# sysfs pin factory and the 1-Wire thermometer need /sys (no ProtectKernelTunables).
NoNewPrivileges=yes
ProtectSystem=full
ProtectHome=read-only
PrivateTmp=yes
ProtectControlGroups=yes
ProtectKernelModules=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RestrictRealtime=yes

[Install]
WantedBy=multi-user.target
"""


def _quote(path: str) -> str:
    return f'"{path}"' if " " in path else path


def _under(root: Path | None, path: Path) -> Path:
    return Path(root) / path.relative_to("/") if root else path


def install(args: argparse.Namespace) -> int:
    """`machikit pi install JOB [--root DIR] [--user USER] [--no-start]`."""
    start = getattr(args, "start", True) and not getattr(args, "no_start", False)
    return install_job(args.job, args.root, getattr(args, "user", DEFAULT_USER), start)


def uninstall(args: argparse.Namespace) -> int:
    """`machikit pi uninstall JOB [--root DIR]`."""
    return uninstall_job(args.job, args.root)


def install_job(job: str, root: Path | None = None, user: str = DEFAULT_USER,
                start: bool = True, python: str = sys.executable, out: Say = print) -> int:
    """Write the unit and (if missing) the example config; start unless told not to."""
    if job not in DESCRIPTIONS:
        out(say("pi_unknown_job", job=job, jobs=", ".join(DESCRIPTIONS)))
        return 2
    real = root is None
    if real and os.geteuid() != 0:
        out(say("pi_need_root"))
        return 1
    groups = _groups(real, out)
    if real:
        _ensure_user(user, groups, out)
    config_file = _under(root, jobconfig.config_path(job))
    created = _write_config(job, config_file, user if real else None, out)
    unit = _under(root, UNIT_DIR / unit_name(job))
    unit.parent.mkdir(parents=True, exist_ok=True)
    unit.write_text(unit_text(job, user, python, groups, _pin_factory(job, config_file)),
                    encoding="utf-8", newline="\n")
    unit.chmod(0o644)
    out(say("pi_unit_written", path=unit))
    commands = [["daemon-reload"], ["enable", "--now", unit_name(job)]]
    ready = _config_ready(job, config_file, out) and not created
    if not (real and start and ready and shutil.which("systemctl")):
        _print_commands(commands, out)
        return 0
    for command in commands:
        if not _systemctl(command, out):
            return 1
    out(say("pi_service_started", unit=unit_name(job)))
    return 0


def uninstall_job(job: str, root: Path | None = None, out: Say = print) -> int:
    """Stop, disable and remove the unit; the config and the outbox data stay."""
    unit = _under(root, UNIT_DIR / unit_name(job))
    if not unit.exists():
        out(say("pi_service_absent", unit=unit_name(job)))
        return 0
    real = root is None
    if real and os.geteuid() != 0:
        out(say("pi_need_root"))
        return 1
    has_systemctl = real and shutil.which("systemctl")
    if has_systemctl:
        _systemctl(["disable", "--now", unit_name(job)], out)
    unit.unlink()
    if has_systemctl:
        _systemctl(["daemon-reload"], out)
    else:
        _print_commands([["disable", "--now", unit_name(job)], ["daemon-reload"]], out)
    out(say("pi_service_removed", unit=unit_name(job), config=jobconfig.config_path(job),
            state=jobconfig.STATE_DIR))
    return 0


def _groups(real: bool, out: Say) -> tuple[str, ...]:
    """On the Pi itself keep only groups that exist: an unknown one stops the unit."""
    if not real:
        return GROUPS
    found = []
    for group in GROUPS:
        try:
            grp.getgrnam(group)
            found.append(group)
        except KeyError:
            out(say("pi_group_missing", group=group))
    return tuple(found)


def _ensure_user(user: str, groups: tuple[str, ...], out: Say) -> None:
    try:
        pwd.getpwnam(user)
        return
    except KeyError:
        pass
    command = ["useradd", "--system", "--no-create-home", "--home-dir",
               str(jobconfig.STATE_DIR), "--shell", "/usr/sbin/nologin"]
    if groups:
        command += ["--groups", ",".join(groups)]
    command.append(user)
    if shutil.which("useradd") and subprocess.run(command, check=False).returncode == 0:
        out(say("pi_user_created", user=user))
    else:
        out(say("pi_user_missing", user=user, command=" ".join(command)))


def _write_config(job: str, path: Path, owner: str | None, out: Say) -> bool:
    """The example config, only when there is none. True when it was written now."""
    if path.exists():
        out(say("pi_config_kept", path=path))
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created 0600 from the start, so the password is never readable by others.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(jobconfig.example(job))
    if owner:
        with contextlib.suppress(LookupError, OSError):
            shutil.chown(path, owner)  # the service user reads it; nobody else
    out(say("pi_config_written", path=path))
    return True


def _config_ready(job: str, path: Path, out: Say) -> bool:
    try:
        jobconfig.load(job, path)
        return True
    except ConfigError as error:
        out(str(error))
        return False


def _pin_factory(job: str, path: Path) -> str:
    """[<job>] pin_factory from the file as it is now (complete or not)."""
    try:
        with open(path, "rb") as handle:
            section = tomllib.load(handle).get(job, {})
        value = section.get("pin_factory", "")
        return value if isinstance(value, str) and value.isidentifier() else ""
    except (OSError, tomllib.TOMLDecodeError, AttributeError):
        return ""


def _systemctl(command: list[str], out: Say) -> bool:
    done = subprocess.run(["systemctl", *command], capture_output=True, text=True,
                          encoding="utf-8", errors="replace", check=False)
    if done.returncode != 0:
        out(say("pi_systemctl_failed", command=" ".join(command), detail=done.stderr.strip()))
    return done.returncode == 0


def _print_commands(commands: list[list[str]], out: Say) -> None:
    out(say("pi_run_these"))
    for command in commands:
        out("  sudo systemctl " + " ".join(command))


# --- the command line (pi/cli.py calls install(args) / uninstall(args)) ----------------

def add_install_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", choices=sorted(DESCRIPTIONS))
    parser.add_argument("--root", type=Path, help="ここに書くだけ / only write files under DIR")
    parser.add_argument("--user", default=DEFAULT_USER, help="サービスのユーザー / service user")
    parser.add_argument("--no-start", action="store_true", help="起動しない / do not start it")


def add_uninstall_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", choices=sorted(DESCRIPTIONS))
    parser.add_argument("--root", type=Path, help="ここから消すだけ / only remove under DIR")
