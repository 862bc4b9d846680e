"""server.json: what `workshop serve` tells the other workshop commands.

The laptop's address can change between the day of preparation and the workshop (a
different access point gives a different address). `workshop serve` writes the address
it serves on here, and `workshop flash`, `labels` and `status` read it, so every board
gets the address the server really has, and nobody types an IP address.
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

SERVER_FILE = "server.json"


@dataclass(frozen=True)
class ServerInfo:
    host: str  # the laptop's address on the workshop network
    mqtt_port: int
    web_port: int
    data_dir: str  # where the embedded broker keeps its users (absolute)

    @property
    def map_url(self) -> str:
        return f"http://{self.host}:{self.web_port}/"


def save(out_dir: Path, info: ServerInfo) -> Path:
    path = Path(out_dir) / SERVER_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(info), indent=2) + "\n", encoding="utf-8", newline="\n")
    return path


def load(out_dir: Path) -> ServerInfo | None:
    try:
        data = json.loads((Path(out_dir) / SERVER_FILE).read_text(encoding="utf-8"))
        return ServerInfo(str(data["host"]), int(data["mqtt_port"]), int(data["web_port"]),
                          str(data["data_dir"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def watch_url(info: ServerInfo) -> str | None:
    """The dashboard user's MQTT URL on this laptop: it may read every device's status
    and nothing else (workshop status, the online check after flashing)."""
    from urllib.parse import quote

    from collector.broker import has_local_user, local_user
    from collector.registry import DASHBOARD_USER

    data_dir = Path(info.data_dir)
    if not has_local_user(data_dir, DASHBOARD_USER):
        return None
    password = quote(local_user(data_dir, DASHBOARD_USER), safe="")
    return f"mqtt://{DASHBOARD_USER}:{password}@127.0.0.1:{info.mqtt_port}"
