"""What the embedded broker checks before amqtt sees a connection, and where amqtt's
own behaviour is not safe enough for a town's broker.

amqtt (0.12) looks up, replaces or deletes the session of a CONNECT's client id before
it checks the password, and hands a known client id's session to whoever connects
with it. So a device that logs in with the collector's client id would take over the
collector's session and silence it. Here a CONNECT is checked first (password, and
whether the client id belongs to that login), and only then given to amqtt.

It also sent retained messages to every connecting client that matched anyone's
subscription, past the topic rules: now only to a client's own, allowed subscriptions.
And it read messages of any size into memory: now, like Mosquitto's
message_size_limit, a message over 256 KiB closes the connection; and one connection
sending in a loop is slowed down, so it cannot take the broker's time from the others.
"""

import asyncio
import logging
import time
import weakref
from pathlib import Path

from amqtt.adapters import BufferReader, ReaderAdapter, StreamReaderAdapter, StreamWriterAdapter
from amqtt.broker import Broker
from amqtt.errors import MQTTError
from amqtt.mqtt.connack import (
    IDENTIFIER_REJECTED,
    NOT_AUTHORIZED,
    SERVER_UNAVAILABLE,
    UNACCEPTABLE_PROTOCOL_VERSION,
    ConnackPacket,
)
from amqtt.mqtt.connect import ConnectPacket
from amqtt.mqtt.packet import CONNECT, MQTTFixedHeader
from amqtt.session import Session

from machikit import contract, credentials

log = logging.getLogger("machikit.broker")
COLLECTOR_USER = "machikit-collector"
MESSAGE_SIZE_LIMIT = 256 * 1024  # bytes of payload, as message_size_limit in Mosquitto's config
CONNECT_WAIT_S = 10  # a connection that does not say who it is within this is closed


def device_parts(user: str) -> tuple[str, str] | None:
    """(town, name) of a device login `<town>.<name>`; None for a service user."""
    town, dot, name = user.partition(".")
    return (town, name) if dot and town and name else None


def client_id_allowed(user: str, client_id: str) -> bool:
    """A client id belongs to one login, so nobody can take over another's session.

    A device uses its login name, or `mk-<town>-<name>` (what the firmware and the Pi
    send), or `machikit-flash-<town>-<name>-…` (`machikit flash --wait`, which at a
    workshop watches with the dashboard's login). Service users may not use a device's
    ids, and only the collector's login may use `machikit-collector…`.
    """
    device = device_parts(user)
    if device:
        town, name = device
        return client_id in (user, f"mk-{town}-{name}") or client_id.startswith(
            f"machikit-flash-{town}-{name}-")
    looks_like_device = "." in client_id or client_id.startswith("mk-")
    reserved = client_id.startswith(COLLECTOR_USER) and user != COLLECTOR_USER
    return not looks_like_device and not reserved


def refusal(connect: ConnectPacket, password_file: Path) -> int | None:
    """The CONNACK code refusing this CONNECT, or None to let it in."""
    user, password = connect.username or "", connect.password or ""
    stored = credentials.read_password_file(password_file).get(user)
    if not (stored and credentials.verify_password(password, stored)):
        return NOT_AUTHORIZED
    if not client_id_allowed(user, connect.client_id or ""):
        log.warning("refused client id %r for user %r: it belongs to another login",
                    connect.client_id, user)
        return IDENTIFIER_REJECTED
    return None


class CheckedReader(StreamReaderAdapter):
    """One connection's bytes, with two limits.

    Size: amqtt reads a PUBLISH payload with one read of its full size, so a message
    over the limit is refused there, before its bytes are in memory.
    Pace: a connection may send RATE bytes a second on average (BURST at once). A device
    sending in a loop is then slowed down by TCP itself (it waits to send, nothing is
    lost), and the broker keeps time for everyone else.
    """

    RATE = 256 * 1024  # bytes/s: a thousand position messages a second
    BURST = 4 * MESSAGE_SIZE_LIMIT

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        super().__init__(reader)
        self._writer = writer
        self._allowance, self._checked = float(self.BURST), time.monotonic()
        self.user = ""  # the login, once its CONNECT was read
        self.reading = asyncio.Event()
        self.reading.set()

    async def read(self, n: int = -1) -> bytes:
        await self.reading.wait()  # cleared while the broker stops: the rest stays unread
        if n > MESSAGE_SIZE_LIMIT:
            log.warning("closed a connection sending %d bytes (limit %d)", n, MESSAGE_SIZE_LIMIT)
            self._writer.transport.abort()  # drop the rest unread, at once
            raise ConnectionResetError("message over the size limit")
        data = await super().read(n)
        await self._keep_pace(len(data))
        return data

    async def _keep_pace(self, size: int) -> None:
        now = time.monotonic()
        self._allowance = min(self.BURST, self._allowance + (now - self._checked) * self.RATE)
        self._allowance -= size
        self._checked = now
        if self._allowance < 0:  # not reading is what makes the sender wait
            await asyncio.sleep(-self._allowance / self.RATE)


async def read_connect(reader: ReaderAdapter) -> tuple[bytes, ConnectPacket | None]:
    """The first packet, whole (so a malformed one cannot leave amqtt waiting for bytes),
    and the CONNECT in it; None for another MQTT version (amqtt speaks only 3.1.1, level 4:
    an MQTT 5 client is told so and may try again with 3.1.1)."""
    header = await MQTTFixedHeader.from_stream(reader)
    if header is None or header.packet_type != CONNECT:
        raise MQTTError("the first packet is not a CONNECT")
    body = await reader.read(header.remaining_length)
    if body[:7] != b"\x00\x04MQTT\x04":
        return header.to_bytes() + body, None
    return header.to_bytes() + body, await ConnectPacket.from_stream(BufferReader(body), header)


class CheckedBroker(Broker):
    """amqtt's Broker with the checks above; password_file is data_dir/broker/passwd.

    amqtt keeps sessions in memory and acknowledges a device's message before it passes
    it on, even when nobody subscribes. So with wait_for_collector every login but the
    collector's is told "server unavailable" (devices keep their messages and try again)
    until the collector has subscribed, and on stop the collector takes what the broker
    holds before the broker forgets it.
    """

    def __init__(self, config: dict, loop: asyncio.AbstractEventLoop,
                 password_file: Path, wait_for_collector: bool = False) -> None:
        super().__init__(config, loop=loop)
        self.password_file = password_file
        self.collector_listening = not wait_for_collector
        self.closing = False
        self.readers: weakref.WeakSet[CheckedReader] = weakref.WeakSet()

    def open_to(self, user: str) -> bool:
        return user == COLLECTOR_USER or (self.collector_listening and not self.closing)

    async def add_subscription(self, subscription: tuple[str, int], session: Session) -> int:
        granted = await super().add_subscription(subscription, session)
        if (granted != 0x80 and session.username == COLLECTOR_USER
                and subscription[0].startswith(contract.ROOT + "/")):
            self.collector_listening = True
        return granted

    async def close_to_all_but_the_collector(self, wait_s: float) -> bool:
        """Turn the others away, then wait (up to wait_s) until the collector has taken
        and acknowledged everything the broker holds. False if it had not by then."""
        self.closing = True
        for reader in list(self.readers):  # what they have not sent whole they send again
            if reader.user != COLLECTOR_USER:
                reader.reading.clear()
        deadline = time.monotonic() + wait_s
        while not self._drained():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    def _drained(self) -> bool:
        sessions = [s for s, _ in self._sessions.values()]
        return self._broadcast_queue.empty() and all(
            s.delivered_message_queue.empty() and (s.username != COLLECTOR_USER or (
                not s.inflight_out and s.retained_messages.empty())) for s in sessions)

    async def stream_connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                               listener_name: str) -> None:
        checked = CheckedReader(reader, writer)
        self.readers.add(checked)
        await self._client_connected(listener_name, checked, StreamWriterAdapter(writer))

    async def _initialize_client_session(self, reader: ReaderAdapter, writer, remote_address,
                                         remote_port):
        try:
            packet = await asyncio.wait_for(read_connect(reader), CONNECT_WAIT_S)
        except Exception as err:  # slow, cut off or not MQTT: amqtt expects MQTTError
            await writer.close()
            raise MQTTError(f"no valid CONNECT from {remote_address}: {err!r}") from err
        code = await self._refusal(packet[1])
        if isinstance(reader, CheckedReader) and packet[1] is not None:
            reader.user = packet[1].username or ""
        if code is not None:
            await ConnackPacket.build(0, code).to_stream(writer)
            await writer.close()
            raise MQTTError(f"refused CONNECT from {remote_address} (code {code})")
        # amqtt reads the CONNECT again, from a copy; the rest comes from the socket.
        return await super()._initialize_client_session(
            BufferReader(packet[0]), writer, remote_address, remote_port)

    async def _refusal(self, connect: ConnectPacket | None) -> int | None:
        if connect is None:
            return UNACCEPTABLE_PROTOCOL_VERSION
        code = await asyncio.to_thread(refusal, connect, self.password_file)
        if code is None and not self.open_to(connect.username or ""):
            return SERVER_UNAVAILABLE  # nobody would store its messages yet (or any more)
        return code

    async def _publish_retained_messages_for_subscription(self, subscription: tuple[str, int],
                                                          session: Session) -> None:
        subscribers = self._subscriptions.get(subscription[0], [])
        if any(s.client_id == session.client_id for s, _ in subscribers):
            await super()._publish_retained_messages_for_subscription(subscription, session)
