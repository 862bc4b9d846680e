"""`machikit workshop prepare`: roster → registered devices, devices.json and labels.pdf.

devices.json holds each device's broker password: the registry keeps only a
hash, so this file is the one place the password exists until it is on the
board. It is written owner-only (0600) and rewritten after every new device,
so a failure half-way never loses a password that the registry already knows.
Running prepare again with the same roster adds nothing twice.
"""

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from collector.storage import Storage
from machikit.contract import is_device_name
from machikit.texts import say
from machikit.workshop.labels import Label, device_url, write_labels
from machikit.workshop.roster import RosterError, RosterRow, read_roster

# the registry's device kind for each starter-kit app (the map's icons and filters)
KINDS = {"snow": "snow_gauge", "printer": "printer_buzzer"}
DEVICES_FILE = "devices.json"
LABELS_FILE = "labels.pdf"


def prepare(roster_path: Path, town: str, storage: Storage, out_dir: Path, map_url: str,
            wifi_ssid: str, report: Callable[[str], None] = print,
            place: tuple[float, float] | None = None) -> list[dict]:
    """Register the roster's devices; returns devices.json's entries (with passwords).
    place: where the workshop is; public snow gauges show there on the map (a gauge has
    no GPS: the map needs to be told where it stands)."""
    from collector import registry  # the collector's registry (issue 6), only when used

    rows = read_roster(roster_path)
    out_dir = Path(out_dir)
    path = out_dir / DEVICES_FILE
    known = _check_town(load_devices(path), town, path)
    _check_not_orphaned(rows, known, storage, town)  # all problems before any change
    out_dir.mkdir(parents=True, exist_ok=True)
    entries: dict[str, dict] = {entry["device"]: entry for entry in known.get("devices", [])}
    for row in rows:
        if row.device in entries:
            report(say("workshop_prepare_exists", device=row.device))
            continue
        settings = {"location": list(place)} if place and row.app == "snow" else None
        new = registry.add_device(storage, town, row.device, KINDS[row.app], public=row.public,
                                  settings=settings)
        entries[row.device] = _entry(row, new.user, new.password)
        save_devices(path, town, map_url, wifi_ssid, list(entries.values()))
        report(say("workshop_prepare_added", device=row.device, participant=row.participant))
    ordered = [entries[row.device] for row in rows]
    save_devices(path, town, map_url, wifi_ssid, list(entries.values()))
    pages = write_labels(out_dir / LABELS_FILE, labels(ordered, town, map_url, wifi_ssid))
    report(say("workshop_prepare_done", count=len(ordered), devices=path,
               labels=out_dir / LABELS_FILE, pages=pages))
    return ordered


def _entry(row: RosterRow, user: str, password: str) -> dict:
    return {"device": row.device, "participant": row.participant, "app": row.app,
            "public": row.public, "user": user, "password": password}


def _check_town(known: dict[str, Any], town: str, path: Path) -> dict[str, Any]:
    if not is_device_name(town):
        raise RosterError([say("workshop_bad_town", town=town)])
    if known and known.get("town") != town:
        raise RosterError([say("workshop_prepare_other_town", path=path,
                               town=known.get("town"))])
    return known


def _check_not_orphaned(rows: list[RosterRow], known: dict[str, Any], storage: Storage,
                        town: str) -> None:
    """A device registered earlier but missing from devices.json has a password nobody
    knows any more (only its hash is kept): say so rather than flash a board that
    can never log in."""
    listed = {entry["device"] for entry in known.get("devices", [])}
    active = {account.device.name for account in storage.device_accounts(town)
              if account.revoked_ms is None}  # a revoked device may be added again
    problems = [say("workshop_prepare_orphan", row=row.row, device=row.device)
                for row in rows if row.device in active - listed]
    if problems:
        raise RosterError(problems)


def reprint_labels(devices_path: Path, map_url: str) -> tuple[Path, int]:
    """labels.pdf again, with the map's address as it is now (after `workshop serve`);
    devices.json remembers it, so the serve's check knows the labels are current."""
    data = load_devices(devices_path)
    save_devices(devices_path, data["town"], map_url, data["wifi_ssid"], data["devices"])
    path = Path(devices_path).parent / LABELS_FILE
    pages = write_labels(path, labels(data["devices"], data["town"], map_url,
                                      data["wifi_ssid"]))
    return path, pages


def labels(entries: list[dict], town: str, map_url: str, wifi_ssid: str) -> list[Label]:
    return [Label(entry["participant"], entry["device"], town, entry["app"], entry["user"],
                  wifi_ssid, device_url(map_url, entry["device"])) for entry in entries]


def load_devices(path: Path) -> dict[str, Any]:
    """devices.json, or {} when there is none yet."""
    try:
        return dict(json.loads(Path(path).read_text(encoding="utf-8")))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise RosterError([say("workshop_devices_unreadable", path=path, detail=err)]) from err


def save_devices(path: Path, town: str, map_url: str, wifi_ssid: str,
                 entries: list[dict]) -> None:
    data = {"town": town, "map_url": map_url, "wifi_ssid": wifi_ssid, "devices": entries}
    write_secret(path, json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def write_secret(path: Path, text: str) -> None:
    """Owner-only from the first byte (no window where the file is world-readable),
    and replaced in one step so a crash leaves the old file, never half a file.
    On Windows the mode is ignored: the file is as private as the user's folder."""
    temporary = Path(str(path) + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
    os.chmod(temporary, 0o600)  # an older .tmp left behind kept its mode
    os.replace(temporary, path)
