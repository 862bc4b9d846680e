"""Device registry and per-device MQTT credentials (`machikit device …`).

Every device gets its own broker user and a random password, stored only as a
Mosquitto $7$ hash. From the registry we write the broker's two files: `passwd`
(who may log in) and `acl` (which topics each user may write and read). The same
files work with Mosquitto and with the embedded broker (collector/broker.py).
A revoked device is left out of both, so it is refused once the broker reloads
them (Mosquitto: SIGHUP; the embedded broker reads them on every check).
"""

import argparse
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from collector.broker import COLLECTOR_USER, broker_dir
from collector.policy import SENSOR_KINDS, VEHICLE_KINDS, parse_area, parse_hours
from collector.settings import Settings, load_settings
from collector.stats import STATS_TOPIC
from collector.storage import Storage, StorageUnavailable, open_storage
from collector.storage.base import DeviceAccount
from machikit import contract, credentials
from machikit.private import write_private_text
from machikit.texts import say, say_short

KINDS = (*VEHICLE_KINDS, *SENSOR_KINDS, "printer_buzzer")
DEVICE_WRITES = (contract.POSITION, contract.READING, contract.EVENT, contract.STATUS,
                 contract.BATCH)
DASHBOARD_USER = "machikit-dashboard"
ADMIN_USER = "machikit-admin"
# Service users get the least they need: the collector reads every device topic and
# writes (and `machikit stats` reads) its counters; a dashboard sees only device status;
# the admin user only sends commands.
SERVICE_RULES = {
    COLLECTOR_USER: [("read", f"{contract.ROOT}/#"),
                     ("readwrite", STATS_TOPIC.format(client_id="+"))],
    DASHBOARD_USER: [("read", f"{contract.ROOT}/+/+/{contract.STATUS}")],
    ADMIN_USER: [("write", f"{contract.ROOT}/+/+/{contract.COMMAND}")],
}


class RegistryError(Exception):
    """Bad input or an unknown/duplicate device; the message is one bilingual line."""


@dataclass(frozen=True)
class NewDevice:
    town: str
    name: str
    kind: str
    public: bool
    user: str
    password: str  # shown once, never stored


def mqtt_user(town: str, name: str) -> str:
    """`<town>.<name>`: '.' is not allowed in town or device names (contract), so the
    user name can never collide across towns ('a-b'/'c' vs 'a'/'b-c'), nor with the
    service users, whose names have no '.'."""
    return f"{town}.{name}"


def _check_names(town: str, name: str) -> None:
    for value in (town, name):
        if not contract.is_device_name(value):
            raise RegistryError(say("device_bad_name", value=value))


def _account(storage: Storage, town: str, name: str) -> DeviceAccount:
    _check_names(town, name)
    for account in storage.device_accounts(town):
        if account.device.name == name:
            return account
    raise RegistryError(say("device_unknown", town=town, name=name))


def add_device(storage: Storage, town: str, name: str, kind: str, public: bool = False,
               settings: dict | None = None) -> NewDevice:
    """Register a device with a new password. A revoked device may be added again."""
    _check_names(town, name)
    if kind not in KINDS:
        raise RegistryError(say("device_bad_kind", kind=kind, kinds=", ".join(KINDS)))
    existing = [a for a in storage.device_accounts(town) if a.device.name == name]
    if existing and existing[0].revoked_ms is None:
        raise RegistryError(say("device_exists", town=town, name=name))
    storage.add_device(town, name, kind, public, settings=settings)
    return NewDevice(town, name, kind, public, mqtt_user(town, name),
                     _new_password(storage, town, name))


def new_password(storage: Storage, town: str, name: str) -> str:
    """Replace a device's password; the old one stops working after the next reload."""
    _account(storage, town, name)
    return _new_password(storage, town, name)


def _new_password(storage: Storage, town: str, name: str) -> str:
    password = credentials.new_password()
    storage.set_credentials(town, name, mqtt_user(town, name),
                            credentials.hash_password(password))
    return password


def revoke(storage: Storage, town: str, name: str) -> None:
    _account(storage, town, name)
    storage.revoke_device(town, name, int(time.time() * 1000))


def _active(accounts: Iterable[DeviceAccount]) -> list[DeviceAccount]:
    return [a for a in accounts if a.revoked_ms is None and a.mqtt_user and a.password_hash]


def acl_text(devices: Iterable[DeviceAccount]) -> str:
    """Mosquitto ACL: each device writes only its own topics and reads only its cmd and its
    own status (so `machikit flash --wait` can see it come online with its own login)."""
    lines = ["# Written by `machikit device broker-files`; edits are overwritten.", ""]
    for user, rules in SERVICE_RULES.items():
        lines += [f"user {user}", *(f"topic {access} {topic}" for access, topic in rules), ""]
    for account in _active(devices):
        base = f"{contract.ROOT}/{account.device.town}/{account.device.name}"
        lines.append(f"user {account.mqtt_user}")
        lines += [f"topic {_access(channel)} {base}/{channel}" for channel in DEVICE_WRITES]
        lines += [f"topic read {base}/{contract.COMMAND}", ""]
    return "\n".join(lines)


def _access(channel: str) -> str:
    return "readwrite" if channel == contract.STATUS else "write"


def write_broker_files(storage: Storage, out_dir: Path,
                       extra_users: dict[str, str] | None = None) -> tuple[Path, Path]:
    """Write out_dir/passwd and out_dir/acl; extra_users: service user -> $7$ hash."""
    accounts = storage.device_accounts()
    users = dict(extra_users or {})
    users.update({a.mqtt_user: a.password_hash for a in _active(accounts)
                  if a.mqtt_user and a.password_hash})
    passwd, acl = out_dir / "passwd", out_dir / "acl"
    credentials.write_password_file(passwd, users)
    write_private_text(acl, acl_text(accounts))
    return passwd, acl


def write_embedded_broker_files(storage: Storage, data_dir: Path) -> Path:
    """The embedded broker's passwd and acl (in data_dir/broker), keeping the service users
    already there; it re-reads them when they change, so they apply at once."""
    folder = broker_dir(data_dir)
    write_broker_files(storage, folder, service_users(folder / "passwd"))
    return folder


def service_users(passwd: Path) -> dict[str, str]:
    """The users of an existing passwd file that are not devices (no '.' in the name)."""
    return {u: h for u, h in credentials.read_password_file(passwd).items() if "." not in u}


# --- command line ------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="設定ファイル / config file (machikit.toml)")
    actions = parser.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="機器を登録 / register a device")
    _town_name(add)
    add.add_argument("--kind", required=True, help=" | ".join(KINDS))
    add.add_argument("--public", action="store_true", help="公開地図に出す / show publicly")
    add.add_argument("--service-hours", action="append", default=[],
                     help="例 / e.g. 'mon-fri 06:30-21:30'")
    add.add_argument("--depot", action="append", default=[], help="LAT,LON,RADIUS_M")
    listing = actions.add_parser("list", help="一覧 / list devices")
    listing.add_argument("--town")
    for action, help_text in (("show", "詳細 / show one device"),
                              ("revoke", "無効にする / revoke a device"),
                              ("password", "新しいパスワード / new password")):
        _town_name(actions.add_parser(action, help=help_text))
    files = actions.add_parser("broker-files", help="passwd と acl を書く / write passwd, acl")
    files.add_argument("--out", required=True, type=Path)


def _town_name(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("town")
    parser.add_argument("name")


def run_device(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    storage = open_storage(settings.database())
    try:
        storage.migrate()
        print(ACTIONS[args.action](storage, args))
        if args.action in CHANGES_CREDENTIALS:
            print(apply_to_broker(storage, settings))
    except RegistryError as err:
        print(err, file=sys.stderr)
        return 2
    except StorageUnavailable as err:
        print(say("error", detail=err), file=sys.stderr)
        return 1
    finally:
        storage.close()
    return 0


def _settings(args: argparse.Namespace) -> dict:
    """Service hours and depots in the form collector/policy.py reads."""
    settings: dict = {}
    try:
        for text in args.service_hours:
            parse_hours(text)  # refuse now what the policy could not read later
        depots = [_depot(text) for text in args.depot]
    except ValueError as err:
        raise RegistryError(say("device_bad_setting", detail=err)) from err
    if args.service_hours:
        settings["service_hours"] = list(args.service_hours)
    if depots:
        settings["depots"] = depots
    return settings


def _depot(text: str) -> dict:
    parts = text.split(",")
    if len(parts) != 3:
        raise ValueError(f"--depot {text!r}: LAT,LON,RADIUS_M")
    lat, lon, radius = (float(part) for part in parts)
    area = {"lat": lat, "lon": lon, "radius_m": radius}
    parse_area(area)
    return area


def _add(storage: Storage, args: argparse.Namespace) -> str:
    new = add_device(storage, args.town, args.name, args.kind, args.public, _settings(args))
    return "\n".join([say("device_added", town=new.town, name=new.name, user=new.user),
                      say("device_password_once", password=new.password)])


def _list(storage: Storage, args: argparse.Namespace) -> str:
    accounts = storage.device_accounts(args.town)
    if not accounts:
        return say("device_list_empty")
    header = [say_short(k) for k in ("device_col_town", "device_col_name", "device_col_kind",
                                     "device_col_public", "device_col_user", "device_col_state")]
    rows = [header] + [_row(a) for a in accounts]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def _row(account: DeviceAccount) -> list[str]:
    d = account.device
    state = "device_revoked_state" if account.revoked_ms else "device_active_state"
    return [d.town, d.name, d.kind, "yes" if d.public else "no", account.mqtt_user or "-",
            say_short(state)]


def _show(storage: Storage, args: argparse.Namespace) -> str:
    account = _account(storage, args.town, args.name)
    header = ("device_col_town", "device_col_name", "device_col_kind", "device_col_public",
              "device_col_user", "device_col_state")
    lines = [f"{say_short(k)}: {v}" for k, v in zip(header, _row(account), strict=True)]
    lines.append(f"{say_short('device_col_settings')}: {account.device.settings}")
    return "\n".join(lines)


def _revoke(storage: Storage, args: argparse.Namespace) -> str:
    revoke(storage, args.town, args.name)
    return say("device_revoked", town=args.town, name=args.name)


def _password(storage: Storage, args: argparse.Namespace) -> str:
    password = new_password(storage, args.town, args.name)
    return "\n".join([say("device_new_password", user=mqtt_user(args.town, args.name)),
                      say("device_password_once", password=password)])


def _broker_files(storage: Storage, args: argparse.Namespace) -> str:
    # Service users (collector, dashboard, admin) already in the file are kept.
    passwd, acl = write_broker_files(storage, args.out, service_users(args.out / "passwd"))
    settings = load_settings(args.config)
    embedded = settings.embedded_broker and \
        Path(args.out).resolve() == broker_dir(settings.data_dir).resolve()
    return say("device_broker_files_embedded" if embedded else "device_broker_files",
               passwd=passwd, acl=acl)


ACTIONS = {"add": _add, "list": _list, "show": _show, "revoke": _revoke,
           "password": _password, "broker-files": _broker_files}
CHANGES_CREDENTIALS = ("add", "revoke", "password")


def apply_to_broker(storage: Storage, settings: Settings) -> str:
    """How a change reaches the broker in use. The embedded broker re-reads its files
    when they change, so once a town uses them there (an acl file exists) they are
    rewritten at once; Mosquitto needs the files written where it reads them, then a
    reload."""
    if not settings.embedded_broker:
        return say("device_apply_mosquitto")
    folder = broker_dir(settings.data_dir)
    if (folder / "acl").exists():
        write_embedded_broker_files(storage, settings.data_dir)
        return say("device_applied_embedded", folder=folder)
    return say("device_apply_embedded", folder=folder)
