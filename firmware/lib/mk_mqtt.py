# mk_mqtt — a machikit device's link to the MQTT broker, on top of umqtt.simple.
#
#   link = Link("tokamachi", "snow-01", "broker.local", 1883, "snow-01", "secret",
#               on_command=apply_settings)
#   if not link.send("reading", msg):   # True only after the broker's PUBACK
#       buffer.append(...)              # keep it in mk_store.RingBuffer, resend later
#   link.poll()                         # now and then: commands, keepalive pings
#
# Why this file exists, and why it does not use umqtt.robust:
# - umqtt.robust retries inside publish() and can lose a message without telling the app.
#   A machikit device must KNOW whether each message reached the broker, because it keeps
#   unacknowledged ones in its flash buffer. So send() answers True (the broker sent PUBACK
#   for this QoS 1 publish) or False (anything else), and never raises.
# - Reconnecting is NOT done inside send(): a snow gauge on a weak LTE link must not spend
#   minutes blocking in connect(). After a failure we wait (exponential backoff with jitter,
#   so forty devices coming back after a power cut do not hit the broker at the same
#   second), and until then send() answers False at once.
# - The clock is a function we are given (default time.ticks_ms), and every method takes an
#   optional now_ms, so tests can move time forward without sleeping.
#
# Availability (docs/protocol.md §3): at every connect the broker gets the last will
# {"v":1,"state":"offline"} (retained, QoS 1), then we publish {"v":1,"state":"online",...}
# (retained). If the device loses power, the broker publishes the will after 1.5 x keepalive.
#
# Commands (§5): we subscribe to our own retained `cmd` topic, so the latest settings arrive
# at every (re)connect. The same command therefore arrives again after each reconnect: the
# app must apply settings idempotently ("interval_s = 60"), never as steps ("+10").
#
# The vendored umqtt/simple.py (1.3.4, see umqtt/VENDOR.md) is not edited. Two things it lacks
# are added from outside: socket timeouts and TLS on MicroPython >= 1.23 (no `ussl` module).
#
# MicroPython-safe: plain classes, %-formatting, no typing, no f-strings.

import sys
import time

import socket

try:
    import random

    def _jitter(limit):
        return random.getrandbits(16) * limit // 65536
except ImportError:  # a port built without random: no jitter is still correct
    def _jitter(limit):
        return 0

try:
    import contract  # a board: contract.mpy next to this file in /lib
except ImportError:
    from machikit import contract  # a Raspberry Pi or a PC with the repository

from umqtt import simple

_ticks = getattr(time, "ticks_ms", None)
_ticks_diff = getattr(time, "ticks_diff", None)


def _default_clock():
    if _ticks is not None:
        return _ticks()
    return int(time.time() * 1000)


def _diff(a, b):
    # ticks_ms wraps around (every ~12 days on a Pico); ticks_diff handles that.
    if _ticks_diff is not None:
        return _ticks_diff(a, b)
    return a - b


class _TimedSockets:
    # umqtt.simple calls socket.socket() itself and never sets a timeout, so a broker that
    # stops answering would freeze the device in read() forever (until the watchdog bites).
    # We give the vendored module this stand-in for its `socket` module: the same functions,
    # but every new socket has a timeout. (Assigning a module global is not editing the file.)
    # The socket is kept (`last`): over TLS, client.sock is MicroPython's SSLSocket, which has
    # setblocking() but no settimeout(), so the timeout is set again on this one.
    def __init__(self, timeout_s):
        self.timeout_s = timeout_s
        self.getaddrinfo = socket.getaddrinfo
        self.last = None

    def socket(self, *args):
        sock = socket.socket(*args)
        sock.settimeout(self.timeout_s)
        self.last = sock
        return sock


class _TlsShim:
    # umqtt.simple 1.3.4 does `import ussl; ussl.wrap_socket(sock, **ssl_params)`.
    # MicroPython 1.23 dropped the `ussl` name. Registering this object as sys.modules["ussl"]
    # makes that import work, and lets us use SSLContext so the server's certificate is
    # checked (cadata) and SNI is sent.
    # cadata: a list of DER certificates (mk_config.read_ca), or the bytes of one. With it,
    # a broker whose certificate is not from one of them, or not for `server`, is refused
    # during the handshake (connect() fails, send() answers False, the Link backs off).
    def __init__(self, server, cadata):
        self.server = server
        self.cadata = cadata

    def wrap_socket(self, sock, **params):
        ssl, positional = _tls_module()
        if not hasattr(ssl, "SSLContext"):  # MicroPython before 1.23
            return ssl.wrap_socket(sock, server_hostname=self.server, **params)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if self.cadata is not None:
            ctx.verify_mode = ssl.CERT_REQUIRED
            certs = self.cadata if isinstance(self.cadata, list) else [self.cadata]
            for cert in certs:  # one call per certificate: tls parses one DER each time
                if positional:
                    ctx.load_verify_locations(cert)
                else:
                    ctx.load_verify_locations(cadata=cert)
        else:
            # Encrypted but not authenticated: only for a broker on the town's own network.
            if not positional:
                ctx.check_hostname = False  # CPython refuses CERT_NONE while it is on
            ctx.verify_mode = ssl.CERT_NONE
        return ctx.wrap_socket(sock, server_hostname=self.server)


def _tls_module():
    # (module, whether load_verify_locations takes the certificate positionally).
    # MicroPython >= 1.23: `tls` is the C module (positional only). The board builds wrap it
    # in a Python `ssl`; the Debian unix port (the test bed) ships `tls` alone.
    try:
        import tls

        return tls, True
    except ImportError:
        import ssl  # CPython (a PC running the tests) and older MicroPython

        return ssl, False


class Link:
    """The device's MQTT connection: QoS 1 sends with a yes/no answer, and backoff."""

    def __init__(self, town, device, server, port=1883, user=None, password=None, tls=False,
                 keepalive=60, on_command=None, fw=None, clock=None, timeout_s=10,
                 backoff_ms=1000, max_backoff_ms=300000, cadata=None, client_id=None):
        self.town = town
        self.device = device
        self.server = server
        self.port = port
        self.user = user
        self.password = password
        self.tls = tls
        self.cadata = cadata
        self.keepalive = keepalive
        self.on_command = on_command
        self.fw = fw
        self.health = {}  # extra status keys the app keeps up to date: rssi, heap, buffered...
        self.clock = clock or _default_clock
        self.timeout_s = timeout_s
        self.backoff_ms = backoff_ms
        self.max_backoff_ms = max_backoff_ms
        self.client_id = client_id or ("mk-%s-%s" % (town, device))
        self.status_topic = contract.topic(town, device, contract.STATUS)
        self.cmd_topic = contract.topic(town, device, contract.COMMAND)
        self.client = None
        self._socket = None  # the TCP socket under client.sock (see _TimedSockets)
        self.failures = 0  # failed attempts in a row: the backoff grows with them
        self.next_try = None  # clock value before which we do not try to connect
        self.attempts = 0  # connects tried, ever (the tests count them)
        self.last_error = None  # repr of the last network error, for the status page / logs
        self.bad_commands = 0
        self._last_io = 0

    # --- connecting ---------------------------------------------------------------------

    def connected(self):
        return self.client is not None

    def connect(self, now_ms=None):
        """Connect unless already connected or still backing off. True when connected."""
        return self._session(now_ms) is not None

    def _session(self, now_ms):
        # The connected client, connecting first if needed; None while offline.
        if self.client is not None:
            return self.client
        now = self.clock() if now_ms is None else now_ms
        if self.next_try is not None and _diff(now, self.next_try) < 0:
            return None
        self.attempts += 1
        client = simple.MQTTClient(self.client_id, self.server, self.port, self.user,
                                   self.password, self.keepalive, ssl=self.tls)
        client.set_callback(self._received)
        will = contract.encode(contract.offline_will())
        client.set_last_will(self.status_topic, will, retain=True, qos=1)
        # Stand-ins for modules (see the classes above): duck types, not module objects.
        sockets = _TimedSockets(self.timeout_s)
        simple.socket = sockets  # type: ignore[assignment]
        if self.tls:
            sys.modules["ussl"] = _TlsShim(self.server, self.cadata)  # type: ignore[assignment]
        try:
            # clean_session: nothing is queued for us while away; the retained cmd is
            # delivered again by the subscription, and our own unsent data is in flash.
            client.connect(True)
            self.client, self._socket = client, sockets.last
            client.publish(self.status_topic, self._online(now), True, 1)
            client.subscribe(self.cmd_topic, 1)
        except Exception as err:  # OSError, MQTTException, or an assert on a garbled reply
            self._failed(err, now, client)
            return None
        self.failures = 0
        self.next_try = None
        self._last_io = now
        return client

    def _online(self, now):
        msg = contract.status("online", fw=self.fw)
        for key in self.health:
            if self.health[key] is not None:
                msg[key] = self.health[key]
        return contract.encode(msg)

    def _failed(self, err, now, client=None):
        self.last_error = repr(err)
        self.failures += 1
        # 1 s, 2 s, 4 s ... up to max_backoff_ms; the wait is between half and all of it.
        delay = min(self.max_backoff_ms, self.backoff_ms << min(self.failures - 1, 20))
        self.next_try = now + delay // 2 + _jitter(delay // 2 + 1)
        self._drop(client or self.client)

    def _timed(self):
        # Blocking again, with our timeout (on the TCP socket: see _TimedSockets).
        if self._socket is not None:
            self._socket.settimeout(self.timeout_s)

    def _drop(self, client):
        # Close the socket: a half-broken link must not be reused, the next call reconnects.
        self.client, self._socket = None, None
        if client is not None and client.sock is not None:
            try:
                client.sock.close()
            except Exception:
                pass

    # --- sending ------------------------------------------------------------------------

    def send(self, channel, msg, now_ms=None, retain=False):
        """Publish msg (a dict) on our topic `channel` with QoS 1.

        True: the broker acknowledged it. False: not sent (no network, backing off, the link
        broke while waiting); keep the message and send it again later. Never raises for
        network problems. A message that breaks the contract is the app's bug and raises."""
        topic = contract.topic(self.town, self.device, channel)
        payload = contract.encode(msg)
        now = self.clock() if now_ms is None else now_ms
        client = self._session(now)
        if client is None:
            return False
        try:
            self._timed()  # check_msg() left it blocking
            client.publish(topic, payload, retain, 1)  # returns after the PUBACK
        except Exception as err:
            self._failed(err, now)
            return False
        self._last_io = now
        return True

    def poll(self, now_ms=None):
        """Handle what the broker sent us (commands) and keep the connection alive.

        Call it often (every loop). Returns True while connected."""
        now = self.clock() if now_ms is None else now_ms
        client = self._session(now)
        if client is None:
            return False
        try:
            # umqtt.simple does not ping by itself; without pings the broker drops us (and
            # publishes our will) after 1.5 x keepalive of silence.
            if self.keepalive and _diff(now, self._last_io) >= self.keepalive * 500:
                client.ping()
                self._last_io = now
            # self.client, not client: a command handled in check_msg() may close the link.
            while self.client is not None and self.client.check_msg() is not None:
                pass
            if self.client is not None:
                self._timed()
        except Exception as err:
            self._failed(err, now)
            return False
        return True

    def _received(self, topic, payload):
        # Called by umqtt.simple from inside check_msg(), publish() or subscribe().
        if self.on_command is None:
            return
        try:
            msg = contract.decode(contract.COMMAND, payload)
        except Exception:  # ContractError, or bytes that are not text
            self.bad_commands += 1
            return
        try:
            self.on_command(msg)
        except Exception as err:  # a bug in the app's handler must not break the link
            self.last_error = "on_command: " + repr(err)

    def close(self, goodbye=True):
        """Disconnect. goodbye=True says `offline` first (before deep sleep, a planned stop);
        a clean disconnect means the broker does NOT publish the will."""
        client = self.client
        if client is None:
            return
        try:
            if goodbye:
                client.publish(self.status_topic, contract.encode(contract.status("offline")),
                               True, 1)
            client.disconnect()
        except Exception as err:
            self.last_error = repr(err)
        self._drop(client)
