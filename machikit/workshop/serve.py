"""`machikit workshop serve`: the embedded server, open to the workshop's own Wi-Fi.

The plain `machikit serve` and the demo listen on 127.0.0.1 only: nothing outside the
laptop can reach them. At a workshop the boards (MQTT) and the participants' phones
(the map) are other machines on the same access point, so this listens on every
interface, says which address they must use, lets the registered devices log in, and
warns when the firewall would drop them.
"""

import argparse
import sys
from pathlib import Path
from urllib.parse import urlsplit

from collector.broker import local_user
from collector.registry import DASHBOARD_USER, write_embedded_broker_files
from collector.serve import Server, wait_for_signal
from collector.settings import Settings, load_settings
from collector.storage import open_storage
from machikit.network import EVERY_INTERFACE, is_loopback_name, lan_address
from machikit.texts import say
from machikit.workshop import firewall, server_info, terminal_qr
from machikit.workshop.prepare import DEVICES_FILE, load_devices


def on_the_lan(settings: Settings) -> Settings:
    """The same settings, with the broker and the map listening on every interface."""
    web = settings.web.model_copy(update={"host": EVERY_INTERFACE})
    return settings.model_copy(update={"embedded_mqtt_host": EVERY_INTERFACE, "web": web})


def let_devices_in(settings: Settings) -> Path:
    """Write the embedded broker's passwd and acl from the device registry: every device
    `workshop prepare` registered may log in, each to its own topics only."""
    local_user(settings.data_dir, DASHBOARD_USER)  # for `workshop status` and flash checks
    storage = open_storage(settings.database())
    try:
        storage.migrate()
        return write_embedded_broker_files(storage, settings.data_dir)
    finally:
        storage.close()


def run_workshop_serve(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    if not settings.embedded_broker:
        print(say("workshop_serve_external"), file=sys.stderr)
        return 2
    host = args.host or lan_address()
    if not host or is_loopback_name(host):
        print(say("workshop_no_lan_address"), file=sys.stderr)
        return 2
    settings = on_the_lan(settings)
    let_devices_in(settings)
    server = Server(settings)
    server.start()
    try:
        info = server_info.ServerInfo(host, settings.embedded_mqtt_port,
                                      urlsplit(server.web_url or "").port or settings.web.port,
                                      str(Path(settings.data_dir).resolve()))
        server_info.save(Path(args.out), info)
        print(describe(info, Path(args.out)), flush=True)
        wait_for_signal(server.stop_event)
    finally:
        server.stop()
    print(say("stopped"))
    return 1 if server.failed else 0


def describe(info: server_info.ServerInfo, out_dir: Path) -> str:
    """What the instructor reads out and projects: addresses, the map's QR code, and
    what to fix before the boards are switched on."""
    terminal_qr.enable_escape_codes()
    lines = [say("workshop_serve_ready", host=info.host, mqtt_port=info.mqtt_port),
             say("workshop_serve_map", url=info.map_url)]
    if sys.stdout.isatty():
        lines.append(terminal_qr.render(info.map_url))
    lines += firewall.advice([info.mqtt_port, info.web_port])
    printed = load_devices(out_dir / DEVICES_FILE).get("map_url")
    if printed and urlsplit(printed).netloc != urlsplit(info.map_url).netloc:
        lines.append(say("workshop_labels_stale", printed=printed, now=info.map_url))
    lines.append(say("workshop_serve_next"))
    return "\n".join(lines)
