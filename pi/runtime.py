"""What every Pi job does at run time: clocks, message stamps, boot numbers, signals, and
the connection to the broker (the outbox sent by a Sender thread)."""

import ctypes
import ctypes.util
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from machikit.texts import say
from pi.config import STATE_DIR, JobConfig

if TYPE_CHECKING:  # imported when used: `--help` needs no paho
    from pi.link import Link

log = logging.getLogger(__name__)


# --- clocks every job uses ------------------------------------------------------------

def monotonic_ms() -> int:
    """Milliseconds that only go forwards (durations, schedules)."""
    return time.monotonic_ns() // 1_000_000


def wall_ms() -> int | None:
    """Unix ms, or None while the kernel says the clock is not synchronised.

    A Pi has no battery clock: after a power cut it starts from the last saved time
    (fake-hwclock) until NTP or GPS corrects it. Such a time must go out as
    "sync": false, not as a wrong "t" (docs/protocol.md)."""
    return time.time_ns() // 1_000_000 if clock_synced() else None


def clock_synced() -> bool:
    """adjtimex(2) with no changes: TIME_ERROR (5) = not synchronised (timesyncd, chrony)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        timex = ctypes.create_string_buffer(512)  # struct timex is ~208 bytes; modes = 0
        return int(libc.adjtimex(timex)) != 5
    except (OSError, AttributeError):  # not Linux: trust the PC's clock
        return True


# --- what every job does ------------------------------------------------------------

def stamp(msg: dict[str, Any], t: int, synced: bool, boot: int = 0) -> dict[str, Any]:
    """A logic message -> publish() fields: no v/seq (the outbox numbers them), the time
    as "t" when it is Unix ms, else "sync": false with "boot" and "up" (ms since boot)."""
    fields = {k: v for k, v in msg.items() if k not in ("v", "seq", "t", "sync")}
    if synced:
        fields["t"] = t
    else:
        fields.update({"sync": False, "boot": boot, "up": t})
    return fields


def boot_number(state_dir: Path | None = None) -> int:
    """Which boot of this Pi this is (counted in <state>/boot.json by the kernel's boot_id).
    "up" is CLOCK_MONOTONIC, which restarts with the system, not with the job."""
    state_dir = state_dir or STATE_DIR
    record = state_dir / "boot.json"
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
        known: dict[str, Any] = {"id": "", "boot": 0}
        if record.exists():
            known = json.loads(record.read_text(encoding="utf-8"))
        if known["id"] != boot_id:
            known = {"id": boot_id, "boot": int(known["boot"]) + 1}
            state_dir.mkdir(parents=True, exist_ok=True)
            record.with_suffix(".tmp").write_text(json.dumps(known), encoding="utf-8",
                                                  newline="\n")
            record.with_suffix(".tmp").replace(record)
        return int(known["boot"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


# --- what every job's run() does --------------------------------------------------------

def use_pin_factory(name: str) -> None:
    """The config's pin_factory, unless the environment (the unit's Environment=) says one."""
    if name:
        os.environ.setdefault("GPIOZERO_PIN_FACTORY", name)


def stop_on_signals(job: str) -> threading.Event:
    """An Event set by SIGTERM (systemctl stop) or SIGINT. Python's default SIGTERM kills
    at once, without `finally:` - and a buzzer that was on would stay on."""
    stop = threading.Event()

    def handler(number: int, _frame: object) -> None:
        log.info(say("pi_job_stopping", job=job, reason=signal.Signals(number).name))
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def link_for(cfg: JobConfig) -> "Link":
    """The job's MQTT link from its [device] and [broker] sections."""
    from machikit import __version__
    from pi.link import Link

    device, broker = cfg.device, cfg.broker
    return Link(device["town"], device["name"], broker["host"], broker["port"],
                device["user"], device["password"], tls=broker["tls"],
                cafile=broker["cafile"] or None, fw=__version__)  # "": the system's CAs


def outbox_path(cfg: JobConfig) -> Path:
    path = Path(cfg.settings["outbox"])
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def connect(cfg: JobConfig, stop: threading.Event) -> Callable[[str, dict], Any]:
    """The default publish() of the printer and snow jobs: put into the job's outbox (on
    disk at once) and wake the Sender thread, which sends it when the broker is there."""
    from pi.outbox import Outbox
    from pi.sender import Sender

    path = outbox_path(cfg)
    outbox = Outbox(path)
    link = link_for(cfg)
    wake = threading.Event()
    sender = Sender(path, link, wake)
    link.start()
    sender.start()

    def stopped() -> None:
        stop.wait()
        sender.stop()
        link.close(goodbye=True)

    threading.Thread(target=stopped, name=f"{cfg.job}-stop", daemon=True).start()

    def publish(channel: str, fields: dict) -> Any:
        message = outbox.put(channel, fields)
        link.health["buffered"] = outbox.count()
        wake.set()
        return message

    return publish
