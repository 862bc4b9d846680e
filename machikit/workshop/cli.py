"""`machikit workshop prepare | serve | flash | labels | status` (docs/workshop.md).

The day's commands need no addresses or passwords typed in: `serve` writes where it
listens into workshop/server.json, and the others read it."""

import argparse
import getpass
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from machikit.texts import say
from machikit.workshop.roster import RosterError

if TYPE_CHECKING:
    from machikit.workshop.flashing import Broker

DEFAULT_OUT = "workshop"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_subparsers(dest="what", required=True)
    prepare = what.add_parser("prepare",
                              help="名簿から機器とラベルを作る / roster → devices, labels")
    prepare.add_argument("roster", help="名簿 / roster.csv")
    prepare.add_argument("--town", required=True, help="町の名前 / town name, e.g. tokamachi")
    prepare.add_argument("--out", default=DEFAULT_OUT, help="出力先 / output folder")
    prepare.add_argument("--map-url",
                         help="地図のURL（QRコード用。既定: このPCのLANアドレス）/ the map's URL "
                              "for the QR codes (default: this laptop's LAN address)")
    prepare.add_argument("--wifi-ssid", required=True, help="ボードが使う Wi-Fi / boards' SSID")
    prepare.add_argument("--place", type=_place, metavar="LAT,LON",
                         help="会場の位置（公開する積雪計を地図のここに出す）/ the venue: public "
                              "snow gauges show here on the map")
    prepare.add_argument("--config", help="設定ファイル / config file (machikit.toml)")

    serve = what.add_parser("serve", help="会場のWi-Fiでサーバーを動かす / serve on the LAN")
    serve.add_argument("--host", help="ボードとスマホが使うこのPCのアドレス（既定: 自動）/ this "
                                      "laptop's address for boards and phones (default: found)")
    serve.add_argument("--out", default=DEFAULT_OUT, help="server.json の置き場所 / output folder")
    serve.add_argument("--config", help="設定ファイル / config file (machikit.toml)")

    flash = what.add_parser("flash", help="つないだボードに順に書き込む / flash boards as plugged")
    flash.add_argument("--devices", default=f"{DEFAULT_OUT}/devices.json")
    flash.add_argument("--wifi-ssid", help="既定: prepare の SSID / default: the one on the labels")
    flash.add_argument("--wifi-password", help="省略すると入力を求めます / asked for if left out")
    flash.add_argument("--broker-host", help="ボードから見たブローカー（既定: workshop serve の"
                                             "アドレス）/ the broker as boards see it (default: "
                                             "where workshop serve listens)")
    flash.add_argument("--broker-port", type=int, help="既定 1883 / default 1883")
    flash.add_argument("--broker-tls", action="store_true",
                       help="町の Mosquitto を TLS で使うとき / a town Mosquitto with TLS")
    flash.add_argument("--mqtt-url", help="オンライン確認用（既定: workshop serve のもの）/ "
                                          "URL to see statuses (default: workshop serve's)")
    flash.add_argument("--online-timeout", type=float, default=120.0)

    labels = what.add_parser("labels", help="ラベルを今の地図のアドレスで印刷し直す / "
                                            "labels again, with the map's current address")
    labels.add_argument("--devices", default=f"{DEFAULT_OUT}/devices.json")
    labels.add_argument("--map-url", help="既定: workshop serve の地図 / default: the served map")

    status = what.add_parser("status", help="参加者のボードの状態 / whose board is online")
    status.add_argument("--devices", default=f"{DEFAULT_OUT}/devices.json")
    status.add_argument("--mqtt-url", help="既定: workshop serve のもの / default: workshop "
                                           "serve's (mqtt://ユーザー:パスワード@ホスト:ポート)")
    status.add_argument("--once", action="store_true", help="一度だけ表示 / print once")


def _place(text: str) -> tuple[float, float]:
    try:
        lat, lon = (float(part) for part in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(say("workshop_bad_place", value=text)) from err
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise argparse.ArgumentTypeError(say("workshop_bad_place", value=text))
    return lat, lon


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

    settings = load_settings(args.config)
    storage = open_storage(settings.database())
    try:
        storage.migrate()
        prepare(Path(args.roster), args.town, storage, Path(args.out),
                args.map_url or _map_url(Path(args.out), settings.web.port), args.wifi_ssid,
                place=args.place)
    except (RegistryError, StorageUnavailable) as err:
        print(say("error", detail=err), file=sys.stderr)
        return 1
    finally:
        storage.close()
    if settings.embedded_broker:
        from machikit.workshop.serve import let_devices_in

        # the broker files: a `workshop serve` (running or later) lets these devices in
        print(say("workshop_brokerfiles_done", folder=let_devices_in(settings)))
    return 0


def _map_url(out_dir: Path, web_port: int) -> str:
    """Where phones will find the map: the running server's, else this laptop's address."""
    from machikit.network import lan_address
    from machikit.workshop import server_info

    info = server_info.load(out_dir)
    if info:
        return info.map_url
    return f"http://{lan_address() or '127.0.0.1'}:{web_port}/"


def _flash(args: argparse.Namespace) -> int:
    from machikit.workshop.flashing import FlashLoop, run_loop

    data = _devices(args.devices)
    broker = _broker(args)
    ssid = args.wifi_ssid or data["wifi_ssid"]
    # Typed, not passed on the command line, so it stays out of the shell history.
    password = args.wifi_password or getpass.getpass(say("workshop_wifi_password", ssid=ssid))
    return run_loop(FlashLoop(Path(args.devices), ssid, password, broker))


def _broker(args: argparse.Namespace) -> "Broker":
    """The broker as the boards will see it: given, or where `workshop serve` listens."""
    from machikit.network import is_loopback_name
    from machikit.workshop import server_info
    from machikit.workshop.flashing import Broker

    info = server_info.load(Path(args.devices).parent)
    host = args.broker_host or (info.host if info else None)
    if not host:
        raise RosterError([say("workshop_no_broker_host")])
    if is_loopback_name(host):
        raise RosterError([say("workshop_loopback_broker", host=host)])
    if args.broker_port:
        port = args.broker_port
    elif args.broker_host or not info:  # a town broker: its usual port
        port = 8883 if args.broker_tls else 1883
    else:
        port = info.mqtt_port
    watch = args.mqtt_url or (server_info.watch_url(info) if info else None)
    return Broker(host, port, args.broker_tls, watch, args.online_timeout)


def _labels(args: argparse.Namespace) -> int:
    from machikit.workshop import server_info
    from machikit.workshop.prepare import reprint_labels

    _devices(args.devices)
    info = server_info.load(Path(args.devices).parent)
    map_url = args.map_url or (info.map_url if info else None)
    if not map_url:
        raise RosterError([say("workshop_no_map_url")])
    path, pages = reprint_labels(Path(args.devices), map_url)
    print(say("workshop_labels_done", labels=path, pages=pages, url=map_url))
    return 0


def _status(args: argparse.Namespace) -> int:
    from machikit.workshop import server_info
    from machikit.workshop.status import run_status

    data = _devices(args.devices)
    info = server_info.load(Path(args.devices).parent)
    url = args.mqtt_url or (server_info.watch_url(info) if info else None)
    if not url:
        raise RosterError([say("workshop_no_watch_url")])
    return run_status(url, data["town"], data["devices"], args.once)


def _serve(args: argparse.Namespace) -> int:
    from machikit.workshop.serve import run_workshop_serve

    return run_workshop_serve(args)


def _devices(path: str) -> dict:
    from machikit.workshop.prepare import load_devices

    data = load_devices(Path(path))
    if not data:
        raise RosterError([say("workshop_devices_unreadable", path=path,
                               detail="not found (run prepare first)")])
    return data


HANDLERS = {"prepare": _prepare, "serve": _serve, "flash": _flash, "labels": _labels,
            "status": _status}
