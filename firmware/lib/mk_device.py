# mk_device — the device's main loop, made of the other parts. No hardware in here.
#
#   seqs = mk_store.SeqStore("/state/seq")
#   buf = mk_store.RingBuffer("/buffer")
#   clock = mk_clock.Clock(time.ticks_ms, time.time, offset, boot=seqs.boot)
#   link = mk_mqtt.Link(town, name, host, port, user, password, tls=True, fw="0.1")
#   dev = mk_device.Device(cfg, link, clock, seqs, buf, read_sensor, print)
#   while True:
#       dev.step(time.ticks_ms())
#       wdt.feed()                 # only here: "fed" means "the loop goes round"
#       time.sleep_ms(100)
#
# What one step() does, in this order:
#   1. poll the link: commands from the server, keepalive pings, reconnect after backoff
#   2. ask the app for new data: app_read(now_ms) returns a list (often empty) of
#      (channel, fields), e.g. [("reading", {"sensor": "snow_depth", "value": 35.2,
#      "unit": "cm", "quality": "reference"})]. `fields` is the message WITHOUT v, seq and
#      time: the device adds those, so every app numbers and stamps its data the same way.
#   3. send that LIVE data at once. A message that is not acknowledged (no PUBACK) is
#      written to the flash buffer. It is never dropped.
#   4. only then replay the buffer, oldest first, in `batch` messages (docs/protocol.md §4).
#      Why live first: a map or a snow page wants the newest value now; the backlog is
#      history and can wait a few seconds.
#   5. now and then, a status message with `buffered` (how many messages wait in flash).
#
# Why `batch` for the replay (contract.batch): one batch carries up to 200 complete
# messages, each with its own seq and time, and the collector checks and stores each item on
# its own. So one PUBACK covers many messages: fewer round trips after a long outage, and
# one small flash write (the buffer's cursor) per batch instead of one per message. We keep
# batches small (default 20 messages, at most about 4 KB) because the whole payload has to
# fit in a Pico W's memory at once.
#
# Never lost, maybe twice: a buffered message is dropped from flash only AFTER the broker
# acknowledged the batch. If the link breaks between the broker receiving it and our
# PUBACK, the batch is sent again later. That is harmless: the collector stores a message
# once per (device, seq, time). A loss would not be harmless, so we accept the duplicate.
#
# MicroPython-safe on purpose: plain classes, %-formatting, no typing, no f-strings.

import gc
import json
import time

try:
    import contract  # a board: contract.mpy in /lib
except ImportError:
    from machikit import contract  # a Raspberry Pi or a PC with the repository

BATCH_ITEMS = 20  # messages per batch (the contract allows 200; memory says fewer)
BATCH_BYTES = 4096  # about this many bytes of items per batch
BATCHES_PER_STEP = 2  # keep one step short: the watchdog waits for the loop
STATUS_S = 300  # default seconds between status messages


_ticks_diff = getattr(time, "ticks_diff", None)


def _diff(a, b):
    # ticks_ms() wraps around (every ~12 days on a Pico); time.ticks_diff handles that.
    if _ticks_diff is not None:
        return _ticks_diff(a, b)
    return a - b


class Device:
    """Numbers, stamps, sends and (when offline) buffers what the app measures.

    config   the dict from mk_config.load (used: app.settings.status_s)
    link     an mk_mqtt.Link
    clock    an mk_clock.Clock (its stamp() gives "t", or "sync": false + boot + up)
    seqs     an mk_store.SeqStore (seq never repeats, even after a power cut)
    buffer   an mk_store.RingBuffer (the offline buffer in flash)
    app_read function(now_ms) -> list of (channel, fields); see the top of this file
    log      function(text), e.g. print
    """

    def __init__(self, config, link, clock, seqs, buffer, app_read, log,
                 batch_items=BATCH_ITEMS, batch_bytes=BATCH_BYTES,
                 batches_per_step=BATCHES_PER_STEP):
        self.config = config
        self.link = link
        self.clock = clock
        self.seqs = seqs
        self.buffer = buffer
        self.app_read = app_read
        self.log = log
        self.batch_items = min(batch_items, contract.MAX_BATCH_ITEMS)
        self.batch_bytes = batch_bytes
        self.batches_per_step = batches_per_step
        # Counters for the status page, the logs and the tests.
        self.made = 0  # messages the app produced (each got a seq)
        self.sent_live = 0  # ... sent at once and acknowledged
        self.buffered_total = 0  # ... written to flash because the send failed
        self.replayed = 0  # buffered messages sent later in a batch and acknowledged
        self.undecodable = 0  # buffer lines that were not JSON (should never happen)
        self._last_status = None  # now_ms of the last status message we sent
        self.statuses_sent = 0
        self._was_online = False
        self._update_health()
        self._measure_heap()

    # --- the loop --------------------------------------------------------------------

    def step(self, now_ms):
        """One round of the main loop. Returns the list of (seq, sent_now) made this step."""
        online = self.link.poll(now_ms)  # commands, pings; reconnects after the backoff
        if online != self._was_online:
            # Logged before anything is sent, so the number is what the `online` status
            # (published by the Link at the connect, from link.health) just told the server.
            self._was_online = online
            if online:
                self.log("online, %d buffered" % self.buffer.count())
            else:
                self.log("offline, keeping data in flash: %s" % self.link.last_error)
        made = []
        # 2 + 3: new data first, sent live.
        link_ok = True  # after one failure in this step we do not try again
        for channel, fields in self.app_read(now_ms) or ():
            msg = self.stamp(channel, fields)
            sent = False
            if link_ok:
                sent = self.link.send(channel, msg, now_ms)
                link_ok = sent
            if sent:
                self.sent_live += 1
            else:
                self._keep(channel, msg)
            made.append((msg["seq"], sent))
        # 4: the backlog, after the live data.
        if link_ok and self.buffer.count() and self.replay(now_ms) and not self.buffer.count():
            self._last_status = None  # all caught up: say so (buffered 0) right away
        # 5: the status message.
        self._update_health()
        if self.link.connected() and self._status_due(now_ms):
            self.send_status(now_ms)
        return made

    def stamp(self, channel, fields):
        """The full message: v, a new seq, the clock's time fields, then the app's fields."""
        if channel not in contract.DATA_CHANNELS:
            raise ValueError("app data must be pos, reading or event, not %s" % channel)
        msg = {"v": contract.VERSION, "seq": self.seqs.next()}
        stamp = self.clock.stamp()  # {"t": ...} or {"sync": False, "boot": ..., "up": ...}
        for key in stamp:
            msg[key] = stamp[key]
        for key in fields:
            msg[key] = fields[key]
        self.made += 1
        return msg

    def _keep(self, channel, msg):
        # Stored as a finished batch item: the message plus "ch" (its channel), one JSON line.
        item = dict(msg)
        item["ch"] = channel
        self.buffer.append(contract.encode(item))
        self.buffered_total += 1

    # --- the backlog -----------------------------------------------------------------

    def replay(self, now_ms):
        """Send the oldest buffered messages in batches. Returns how many were acknowledged.

        A batch leaves the flash only after its PUBACK; if the send fails, it stays (and is
        tried again after the link's backoff)."""
        done = 0
        for _ in range(self.batches_per_step):
            lines = self.buffer.peek(self.batch_items)
            if not lines:
                break
            items = []  # type: list
            size = 0
            for line in lines:
                if items and size + len(line) > self.batch_bytes:
                    break  # the rest goes in the next batch
                size += len(line) + 1
                items.append(line)
            pairs = []
            for line in items:
                try:
                    item = json.loads(line)
                    channel = item.pop("ch")
                    pairs.append((channel, item))
                except (ValueError, KeyError, TypeError, AttributeError):
                    # The buffer's CRC makes this impossible in practice; if it happens the
                    # line can never be sent, so it must not block the buffer forever.
                    self.undecodable += 1
                    self.log("buffer: a line that is not a message was skipped")
            if pairs and not self.link.send(contract.BATCH, contract.batch(pairs), now_ms):
                return done  # not acknowledged: keep everything, try again later
            self.buffer.drop(len(items))  # acknowledged: now (and only now) forget them
            self.replayed += len(pairs)
            done += len(pairs)
        return done

    # --- status ----------------------------------------------------------------------

    def _status_s(self):
        try:
            return int(self.config["app"]["settings"].get("status_s", STATUS_S))
        except (KeyError, TypeError, ValueError, AttributeError):
            return STATUS_S

    def _status_due(self, now_ms):
        if self._last_status is None:
            return True
        return _diff(now_ms, self._last_status) >= self._status_s() * 1000

    def _update_health(self):
        # The Link puts these into the retained `online` status at every (re)connect.
        self.link.health["buffered"] = self.buffer.count()
        self.link.health["dropped"] = self.buffer.dropped
        # The device's own time (None until NTP): two statuses then never share a timestamp
        # on the server (without it the server uses its receive time, and a burst of queued
        # statuses after an outage can arrive in the same millisecond), and a retained copy
        # delivered again keeps its time, so it is still stored once.
        self.link.health["t"] = self.clock.t()

    def _measure_heap(self):
        # Free heap after a collection (so only at status time, not every loop): a number
        # that shrinks day after day is a leak.
        if hasattr(gc, "mem_free"):  # MicroPython only
            gc.collect()
            self.link.health["heap"] = gc.mem_free()

    def status(self):
        """The status message (retained on the broker): online, how much waits in flash and
        how much was lost to a full buffer."""
        self._update_health()
        self._measure_heap()
        msg = contract.status("online", fw=self.link.fw)
        for key in self.link.health:
            if key not in msg and self.link.health[key] is not None:
                msg[key] = self.link.health[key]
        return msg

    def send_status(self, now_ms):
        """Publish the status now (retained). True when the broker acknowledged it."""
        ok = self.link.send(contract.STATUS, self.status(), now_ms, retain=True)
        if ok:
            self._last_status = now_ms
            self.statuses_sent += 1
        return ok
