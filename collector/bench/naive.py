"""The naive consumer, for comparison: what a first attempt looks like.

One message in, one INSERT, one COMMIT; paho acknowledges after the callback
returns (auto-ack), so it is lossless too, but every message waits for its own
commit (a WAL flush). Same table, same dedupe key (ON CONFLICT DO NOTHING).
"""

import json

import psycopg

from collector.mqtt import connect, make_client
from collector.settings import parse_mqtt_url
from machikit import contract

INSERT = (
    "INSERT INTO positions (time, device_id, seq, received_at, clock_synced, lat, lon,"
    " speed, heading, sats, hdop) VALUES (to_timestamp(%s / 1000.0), %s, %s, now(), true,"
    " %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
)


def consume(mqtt_url: str, db_url: str, town: str, client_id: str, topic: str,
            expiry_s: int) -> None:
    """Process entry: resume the persistent session and store until terminated."""
    conn = psycopg.connect(db_url)
    devices: dict[str, int] = dict(
        conn.execute("SELECT name, id FROM devices WHERE town = %s", (town,)).fetchall())
    conn.commit()

    def on_message(client, userdata, message) -> None:
        _town, device, _channel = contract.parse_topic(message.topic)
        m = json.loads(message.payload)
        conn.execute(INSERT, (m["t"], devices[device], m["seq"], m["lat"], m["lon"],
                              m.get("speed"), m.get("heading"), m.get("sats"), m.get("hdop")))
        conn.commit()

    target = parse_mqtt_url(mqtt_url)
    client = make_client(target, client_id, "5", persistent=True)
    client.on_message = on_message
    client.on_connect = lambda c, *_: c.subscribe(topic, 1)
    connect(client, target, persistent=True, session_expiry_s=expiry_s)
    client.loop_forever()
