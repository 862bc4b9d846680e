"""Making paho-mqtt clients the same way everywhere (collector, demo devices, tools)."""

import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from collector.settings import MqttTarget

V5 = "5"


def make_client(
    target: MqttTarget,
    client_id: str,
    protocol: str = V5,
    persistent: bool = False,
    manual_ack: bool = False,
    ca_file: str | None = None,
) -> mqtt.Client:
    """A client that reconnects by itself with backoff (1 s … 30 s).

    persistent: the broker keeps our subscriptions and queues QoS 1 messages
    while we are away (MQTT 5 session expiry, or clean_session=False in 3.1.1).
    """
    version = mqtt.MQTTv5 if protocol == V5 else mqtt.MQTTv311
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=version,
        clean_session=None if version == mqtt.MQTTv5 else not persistent,
        manual_ack=manual_ack,
    )
    if target.username:
        client.username_pw_set(target.username, target.password)
    if target.tls:
        client.tls_set(ca_certs=ca_file, cert_reqs=ssl.CERT_REQUIRED)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client


def connect(
    client: mqtt.Client,
    target: MqttTarget,
    persistent: bool = False,
    session_expiry_s: int = 0,
    receive_maximum: int | None = None,
    keepalive: int = 30,
) -> None:
    """Start connecting in the background (client.loop_start() drives it)."""
    if client.protocol != mqtt.MQTTv5:
        client.connect_async(target.host, target.port, keepalive)
        return
    props = Properties(PacketTypes.CONNECT)
    if persistent:
        props.SessionExpiryInterval = session_expiry_s
    if receive_maximum:
        # How many unacknowledged messages the broker may send us: with
        # ack-after-commit this is both the pipeline depth and the memory bound.
        props.ReceiveMaximum = receive_maximum
    client.connect_async(
        target.host, target.port, keepalive, clean_start=not persistent, properties=props
    )
