"""`machikit flash --wait`: see the flashed board come online on the town's broker.

It watches the board's retained status, with a login that may read it: at a workshop
the dashboard's, otherwise the board's own. On Mosquitto's devices' listener a client id
is its login name (use_username_as_clientid), so the watcher and the board share one id:
when the board logs in, the broker pushes the watcher off with "session taken over".
Only a client with the board's password can do that, so it proves the board is online,
and the watcher stops there instead of pushing the board off in turn. That reason exists
only in MQTT 5; the embedded broker speaks 3.1.1, where the watcher has its own client id.
"""

import contextlib
import json
import ssl
import threading
import time
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt

from machikit import contract

SESSION_TAKEN_OVER = 142  # MQTT 5 reason code


def wait_online(mqtt_url: str, town: str, name: str, timeout: float,
                ca_der: bytes | None = None) -> bool:
    """True once the device's retained status says online: its first message after the
    reset. mqtt_url: mqtt://user:password@host:1883 (or mqtts://) of a user that may read
    the device's status topic. ca_der: the CA the board was given (else the system's)."""
    deadline = time.monotonic() + timeout
    for protocol in (mqtt.MQTTv5, mqtt.MQTTv311):
        answer = Watch(mqtt_url, town, name, protocol, ca_der).wait(deadline)
        if answer is not None:
            return answer
    return False


class Watch:
    def __init__(self, mqtt_url: str, town: str, name: str, protocol: mqtt.MQTTProtocolVersion,
                 ca_der: bytes | None) -> None:
        self.url, self.protocol = urlsplit(mqtt_url), protocol
        self.topic = contract.topic(town, name, contract.STATUS)
        self.online, self.refused = threading.Event(), threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=protocol,
                                  client_id=f"machikit-flash-{town}-{name}-{time.monotonic_ns()}")
        if self.url.username:
            self.client.username_pw_set(unquote(self.url.username),
                                        unquote(self.url.password or ""))
        if self.url.scheme == "mqtts":
            self.client.tls_set_context(ssl.create_default_context(cadata=ca_der))
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect

    def wait(self, deadline: float) -> bool | None:
        """True: online; False: not before the deadline; None: this protocol was refused."""
        port = self.url.port or (8883 if self.url.scheme == "mqtts" else 1883)
        self.client.connect_async(self.url.hostname or "localhost", port)
        self.client.loop_start()
        try:
            while time.monotonic() < deadline and not self.online.is_set():
                if self.refused.wait(0.1) and self.protocol == mqtt.MQTTv5:
                    return None  # e.g. a broker that speaks only 3.1.1: try that
            return self.online.is_set()
        finally:
            self.client.disconnect()
            self.client.loop_stop()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any,
                    props: Any) -> None:
        if reason.is_failure:
            self.refused.set()
            return
        client.subscribe(self.topic, qos=1)  # again after a reconnect: the retained copy too

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with contextlib.suppress(ValueError, AttributeError):
            if json.loads(msg.payload).get("state") == "online":
                self.online.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any,
                       props: Any) -> None:
        if getattr(reason, "value", None) == SESSION_TAKEN_OVER:
            self.online.set()
