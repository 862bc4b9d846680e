"""`machikit flash`: one board, from the command line (workshop mode flashes many)."""

import argparse
from pathlib import Path

from machikit.flash.boards import find_boards
from machikit.flash.bundle import APPS, device_config
from machikit.flash.certs import CertificateError, board_ca
from machikit.flash.copy import FlashError, flash_board, progress_bar
from machikit.flash.watch import wait_online
from machikit.texts import say


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", help="COM3, /dev/ttyACM0 …")
    where.add_argument("--auto", action="store_true",
                       help="ひとつだけつながっているボードを使う / use the one board plugged in")
    parser.add_argument("--app", choices=APPS, required=True)
    for option in ("town", "name", "user", "password", "wifi-ssid", "wifi-password",
                   "broker-host"):
        parser.add_argument(f"--{option}", required=True)
    parser.add_argument("--broker-port", type=int, default=None,
                        help="既定 8883（--no-tls なら 1883）/ default 8883 (1883 with --no-tls)")
    parser.add_argument("--no-tls", action="store_true",
                        help="暗号化しない（講習会の内蔵ブローカーなど閉じた LAN だけ）/ "
                             "no TLS (a closed LAN only, e.g. the workshop broker)")
    parser.add_argument("--ca", metavar="FILE",
                        help="ブローカーの証明書を発行した CA の証明書（PEM か DER）。"
                             "ボードはこれでブローカーを確かめます / the CA certificate "
                             "(PEM or DER) that issued the broker's certificate: the board "
                             "checks the broker with it")
    parser.add_argument("--wait", type=float, nargs="?", const=120.0, default=None,
                        metavar="SECONDS",
                        help="ブローカーで online を待つ / wait for online on the broker")
    parser.add_argument("--watch-url", help="待つときの MQTT URL（既定は機器の認証情報。ACL で"
                        "読めないときに）/ MQTT URL to watch with (default: the device's own)")


def _pick_port(args: argparse.Namespace) -> str:
    if args.port:
        return str(args.port)
    boards = find_boards()
    if not boards:
        raise FlashError(say("flash_no_board"))
    if len(boards) > 1:
        raise FlashError(say("flash_many_boards", ports=", ".join(b.device for b in boards)))
    return boards[0].device


def run_flash(args: argparse.Namespace) -> int:
    from machikit.network import is_loopback_name

    if is_loopback_name(args.broker_host):  # the board would look for a broker on itself
        print(say("workshop_loopback_broker", host=args.broker_host))
        return 2
    tls = not args.no_tls
    port_number = args.broker_port or (8883 if tls else 1883)
    config = device_config(args.town, args.name, args.user, args.password, args.wifi_ssid,
                           args.wifi_password, args.broker_host, port_number, tls)
    try:
        ca_der = _board_ca(args.ca)
    except CertificateError as err:
        print(say("flash_bad_ca", detail=err))
        return 2
    if tls and ca_der is None:
        print(say("flash_no_ca"))  # allowed, as before: the board encrypts but cannot check
    try:
        port = _pick_port(args)
        flash_board(port, args.app, config, progress=progress_bar,
                    ca_der=ca_der if tls else None)
    except FlashError as err:
        print(err)
        return 1
    print(say("flash_done", port=port, app=args.app, town=args.town, name=args.name))
    if args.wait is None:
        return 0
    return _wait(args, port_number, tls, ca_der)


def _board_ca(path: str | None) -> bytes | None:
    """The CA for the board (DER), None without --ca; CertificateError if unusable."""
    return None if path is None else board_ca(Path(path))


def _wait(args: argparse.Namespace, port_number: int, tls: bool, ca_der: bytes | None) -> int:
    # The device's own credentials: its status topic is one it may read and write.
    from urllib.parse import quote

    scheme = "mqtts" if tls else "mqtt"
    user, password = quote(args.user, safe=""), quote(args.password, safe="")
    url = args.watch_url or f"{scheme}://{user}:{password}@{args.broker_host}:{port_number}"
    timeout = int(args.wait)
    print(say("flash_waiting", town=args.town, name=args.name, timeout=timeout))
    if wait_online(url, args.town, args.name, args.wait, ca_der=ca_der):
        print(say("flash_online", town=args.town, name=args.name))
        return 0
    print(say("flash_not_online", town=args.town, name=args.name, timeout=timeout))
    return 1
