"""`machikit workshop prepare | flash | status` (docs/workshop.md)."""

import argparse
import getpass
import sys
from pathlib import Path

from machikit.texts import say
from machikit.workshop.roster import RosterError

DEFAULT_OUT = "workshop"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_subparsers(dest="what", required=True)
    prepare = what.add_parser("prepare",
                              help="名簿から機器とラベルを作る / roster → devices, labels")
    prepare.add_argument("roster", help="名簿 / roster.csv")
    prepare.add_argument("--town", required=True, help="町の名前 / town name, e.g. tokamachi")
    prepare.add_argument("--out", default=DEFAULT_OUT, help="出力先 / output folder")
    prepare.add_argument("--map-url", default="http://127.0.0.1:8080/",
                         help="地図のURL（QRコード用）/ the map page's URL, for the QR codes")
    prepare.add_argument("--wifi-ssid", required=True, help="ボードが使う Wi-Fi / boards' SSID")
    prepare.add_argument("--config", help="設定ファイル / config file (machikit.toml)")

    flash = what.add_parser("flash", help="つないだボードに順に書き込む / flash boards as plugged")
    flash.add_argument("--devices", default=f"{DEFAULT_OUT}/devices.json")
    flash.add_argument("--wifi-ssid", help="既定: prepare の SSID / default: the one on the labels")
    flash.add_argument("--wifi-password", help="省略すると入力を求めます / asked for if left out")
    flash.add_argument("--broker-host", required=True, help="ボードから見たブローカー / broker")
    flash.add_argument("--broker-port", type=int, default=1883)
    flash.add_argument("--broker-tls", action="store_true")
    flash.add_argument("--mqtt-url", help="オンライン確認用（管理者）/ admin URL to see statuses")
    flash.add_argument("--online-timeout", type=float, default=120.0)

    status = what.add_parser("status", help="参加者のボードの状態 / whose board is online")
    status.add_argument("--devices", default=f"{DEFAULT_OUT}/devices.json")
    status.add_argument("--mqtt-url", required=True,
                        help="mqtt://ユーザー:パスワード@ホスト:ポート（管理者 / admin）")
    status.add_argument("--once", action="store_true", help="一度だけ表示 / print once")


def run_workshop(args: argparse.Namespace) -> int:
    try:
        return int(HANDLERS[args.what](args))
    except RosterError as err:
        for problem in err.problems:
            print(problem, file=sys.stderr)
        return 1


def _prepare(args: argparse.Namespace) -> int:
    from collector.registry import RegistryError
    from collector.settings import load_settings
    from collector.storage import StorageUnavailable, open_storage
    from machikit.workshop.prepare import prepare

    storage = open_storage(load_settings(args.config).database())
    try:
        storage.migrate()
        prepare(Path(args.roster), args.town, storage, Path(args.out), args.map_url,
                args.wifi_ssid)
    except (RegistryError, StorageUnavailable) as err:
        print(say("error", detail=err), file=sys.stderr)
        return 1
    finally:
        storage.close()
    return 0


def _flash(args: argparse.Namespace) -> int:
    from machikit.workshop.flashing import Broker, FlashLoop, run_loop

    data = _devices(args.devices)
    ssid = args.wifi_ssid or data["wifi_ssid"]
    # Typed, not passed on the command line, so it stays out of the shell history.
    password = args.wifi_password or getpass.getpass(say("workshop_wifi_password", ssid=ssid))
    broker = Broker(args.broker_host, args.broker_port, args.broker_tls, args.mqtt_url,
                    args.online_timeout)
    return run_loop(FlashLoop(Path(args.devices), ssid, password, broker))


def _status(args: argparse.Namespace) -> int:
    from machikit.workshop.status import run_status

    data = _devices(args.devices)
    return run_status(args.mqtt_url, data["town"], data["devices"], args.once)


def _devices(path: str) -> dict:
    from machikit.workshop.prepare import load_devices

    data = load_devices(Path(path))
    if not data:
        raise RosterError([say("workshop_devices_unreadable", path=path,
                               detail="not found (run prepare first)")])
    return data


HANDLERS = {"prepare": _prepare, "flash": _flash, "status": _status}
