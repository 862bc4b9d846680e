"""The embedded broker lets in only users of its password file."""

import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from collector.broker import EmbeddedBroker, local_url
from collector.mqtt import make_client
from collector.settings import MqttTarget, Settings, parse_mqtt_url
from tests.collector.helpers import free_port


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    s = Settings(data_dir=tmp_path, embedded_mqtt_port=free_port())
    local_url(s)  # the collector's user, created at first start
    broker = EmbeddedBroker(s.embedded_mqtt_host, s.embedded_mqtt_port, s.data_dir)
    broker.start()
    yield s
    broker.stop()


def login(target: MqttTarget) -> str:
    """What the broker answered: 'Success', 'Not authorized', ..."""
    answer: list[str] = []
    done = threading.Event()
    client = make_client(target, "login-test", "3.1.1")

    def on_connect(c: mqtt.Client, u: object, f: object, reason: object, p: object) -> None:
        answer.append(str(reason))
        done.set()

    client.on_connect = on_connect
    client.connect(target.host, target.port)
    client.loop_start()
    done.wait(5)
    client.disconnect()
    client.loop_stop()
    return answer[0] if answer else "no answer"


def test_known_user_with_right_password_gets_in(settings: Settings) -> None:
    assert login(parse_mqtt_url(local_url(settings, "bus-01"))) == "Success"


def test_anonymous_and_wrong_passwords_are_refused(settings: Settings) -> None:
    good = parse_mqtt_url(local_url(settings, "bus-01"))
    anonymous = good.model_copy(update={"username": None, "password": None})
    wrong = good.model_copy(update={"password": "guess"})
    stranger = good.model_copy(update={"username": "stranger"})
    for target in (anonymous, wrong, stranger):
        assert login(target) != "Success"


def test_password_file_holds_only_hashes(settings: Settings) -> None:
    password = parse_mqtt_url(local_url(settings, "bus-01")).password
    text = (settings.data_dir / "broker" / "passwd").read_text()
    assert password and password not in text
    assert "bus-01:$7$101$" in text
    assert (settings.data_dir / "broker" / "passwd").stat().st_mode & 0o077 == 0
