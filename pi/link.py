"""The Raspberry Pi's MQTT connection (paho-mqtt), the CPython sibling of firmware/lib/mk_mqtt.py.

    link = Link("muroran", "bus-01", "mqtt.example.jp", 8883, "bus-01", secret, tls=True,
                fw="pi-0.1", on_command=apply_settings)
    link.start()                           # connects (and reconnects) in the background
    if link.send("pos", payload):          # True only after the broker's PUBACK
        outbox.remove([seq])
    link.close()                           # says `offline`, then disconnects cleanly

Why send() blocks for the PUBACK and answers yes/no: the job keeps every message in the
outbox (pi/outbox.py) until the broker has it, so it must KNOW. send() never hands a message
to paho while we are offline: paho would queue it in memory and replay it after the
reconnect, a second, invisible outbox that grows for as long as the outage lasts.

MQTT 3.1.1, not 5: the embedded broker (`machikit serve` on a Pi or a laptop, amqtt) speaks
only 3.1.1, Mosquitto speaks both, and we need nothing from 5: a clean session (nothing is
queued by the broker for us; our unsent data is in the outbox) and a last will are 3.1.1.

Availability (docs/protocol.md §3): the broker holds our last will {"v":1,"state":"offline"}
(retained, QoS 1) and publishes it when we vanish (power cut, kill -9, lost network: after
1.5 x keepalive at the latest). At every (re)connect we publish, retained, the `online`
status with `health` (buffered, dropped, ...), and subscribe to our retained `cmd` topic,
so the latest settings arrive at every reconnect: apply them idempotently.
"""

import logging
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from machikit import contract
from machikit.texts import say

log = logging.getLogger("machikit.pi.link")

GOODBYE_TIMEOUT_S = 5.0  # how long close() waits for the broker to take `offline`


class Link:
    """The device's MQTT connection: QoS 1 sends with a yes/no answer. See the module docstring."""

    def __init__(self, town: str, device: str, host: str, port: int, user: str, password: str,
                 *, tls: bool = False, cafile: str | None = None, fw: str = "",
                 keepalive: int = 60, on_command: Callable[[dict], None] | None = None,
                 client_id: str | None = None) -> None:
        self.town, self.device, self.host, self.port = town, device, host, port
        self.fw = fw
        self.keepalive = keepalive
        self.on_command = on_command
        # Extra status keys kept up to date by the job: buffered, dropped, sats, hdop, sync...
        self.health: dict[str, object] = {}
        self.status_topic = contract.topic(town, device, contract.STATUS)
        self.cmd_topic = contract.topic(town, device, contract.COMMAND)
        self.bad_commands = 0  # commands refused by the contract (the tests count them)
        self.connects = 0  # successful (re)connects
        self._offline_said = False  # logged this outage already: one line, not one a minute
        self.client = self._make_client(client_id or f"mk-{town}-{device}", user, password,
                                        tls, cafile)

    def _make_client(self, client_id: str, user: str, password: str, tls: bool,
                     cafile: str | None) -> mqtt.Client:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv311, clean_session=True)
        client.username_pw_set(user, password)
        if tls:
            client.tls_set(ca_certs=cafile)  # cafile None: the system's CAs
        client.will_set(self.status_topic, contract.encode(contract.offline_will()),
                        qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=60)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    # --- connection -----------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background; paho's thread reconnects with backoff 1..60 s."""
        self.client.connect_async(self.host, self.port, self.keepalive)
        self.client.loop_start()

    @property
    def connected(self) -> bool:
        return self.client.is_connected()

    def close(self, goodbye: bool = True) -> None:
        """Disconnect. goodbye=True first says `offline` (retained): a planned stop. Either way
        the disconnect is clean, so the broker does NOT publish the will; with goodbye=False
        the retained status stays `online` (a restart that is back in seconds)."""
        if goodbye and self.connected:
            self._publish(contract.STATUS, contract.encode(contract.status("offline")), True,
                          GOODBYE_TIMEOUT_S)
        self.client.disconnect()
        self.client.loop_stop()

    # --- sending --------------------------------------------------------------------------

    def send(self, channel: str, payload: bytes, retain: bool = False,
             timeout: float = 10.0) -> bool:
        """Publish with QoS 1 and wait for the PUBACK. True: the broker has it. False: not
        connected, or no PUBACK within `timeout`; keep the message. Never raises for network
        trouble."""
        if not self.connected:
            return False  # see the module docstring: paho must not queue it for us
        return self._publish(channel, payload, retain, timeout)

    def send_status(self, timeout: float = 10.0) -> bool:
        """Publish the retained `online` status with the current health now."""
        return self.send(contract.STATUS, self._online_status(), retain=True, timeout=timeout)

    def _publish(self, channel: str, payload: bytes, retain: bool, timeout: float) -> bool:
        topic = contract.topic(self.town, self.device, channel)
        try:
            info = self.client.publish(topic, payload, qos=1, retain=retain)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                return False
            info.wait_for_publish(timeout)
            # If the PUBACK is late, paho keeps the message and may still deliver it (or
            # resend it after a reconnect); we answer False and the outbox sends it again.
            # A duplicate is harmless (the collector stores each seq once), a loss is not.
            return info.is_published()
        except (OSError, RuntimeError, ValueError) as err:  # a socket gone mid-publish
            log.debug("publish on %s failed: %r", topic, err)
            return False

    def _online_status(self) -> bytes:
        health = {k: v for k, v in self.health.items() if v is not None}
        if health.get("sync") is True and "t" not in health:
            # Without `t` the collector records the status as "clock not synced"; the job
            # says the clock is set (NTP or GPS), so stamp the status with it.
            health["t"] = time.time_ns() // 1_000_000
        return contract.encode(contract.status("online", fw=self.fw or None, **health))

    # --- paho callbacks (paho's network thread) ---------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            log.error(say("mqtt_refused", detail=str(reason)))
            return
        self.connects += 1
        self._offline_said = False
        log.info(say("pi_link_online", device=self.device, host=self.host, port=self.port,
                     buffered=self.health.get("buffered", 0)))
        # Not waiting for the PUBACKs here: this is paho's network thread, which reads them.
        client.publish(self.status_topic, self._online_status(), qos=1, retain=True)
        client.subscribe(self.cmd_topic, qos=1)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self._said_offline(f"{self.host}:{self.port}")

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        if reason.is_failure:  # not our own disconnect()
            self._said_offline(str(reason))

    def _said_offline(self, detail: str) -> None:
        if not self._offline_said:
            self._offline_said = True
            log.warning(say("pi_link_offline", device=self.device, detail=detail))

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        # An exception must not escape: it would end paho's network thread, and the link.
        if message.topic != self.cmd_topic or not message.payload:
            return  # an empty payload clears the retained command: nothing to do
        try:
            msg = contract.decode(contract.COMMAND, message.payload)
        except contract.ContractError as err:
            self.bad_commands += 1
            log.warning(say("pi_bad_command", detail=f"{err.reason} {err.detail}"))
            return
        if self.on_command is None:
            return
        try:
            self.on_command(msg)
        except Exception:
            log.exception(say("pi_command_failed"))

