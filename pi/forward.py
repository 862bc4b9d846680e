"""Moves messages from the Outbox through the Link: live data first, then the backlog.

    forwarder = Forwarder(outbox, link)
    while running:
        outbox.put("pos", fix)          # the job's own work
        forwarder.pump()                # send what waits (returns at once when offline)

One pump():
  1. the NEWEST unsent message, alone on its own channel (`pos`, `reading`, `event`), if it
     was put since the previous pump. Why first: the map wants where the bus is now; the
     backlog is history and can wait a few seconds. (Only a message new since the last pump
     counts as live: otherwise every pump would take the newest message of an old backlog
     and send the backlog backwards, one at a time.)
  2. the backlog, OLDEST first, as contract batches on the `batch` channel (docs/protocol.md
     §4): one PUBACK covers up to `batch_items` messages, so a long outage drains quickly.

A message leaves the outbox only after the broker's PUBACK. If the link breaks between the
broker taking a batch and our PUBACK, the batch is sent again later: the collector stores
each (device, seq, time) once, so a duplicate is harmless and a loss is impossible.
"""

import json
import logging

from machikit import contract
from machikit.texts import say
from pi.link import Link
from pi.outbox import Outbox, Row

log = logging.getLogger("machikit.pi.forward")

# {"v":1,"items":[ ... ]} around the items, plus ,"ch":"reading" added to each item.
_BATCH_OVERHEAD = len(contract.encode(contract.batch([])))
_CH_OVERHEAD = len(',"ch":"reading"')


class Forwarder:
    """Sends what waits in an Outbox through a Link. See the module docstring."""

    def __init__(self, outbox: Outbox, link: Link, batch_items: int = 50,
                 batch_bytes: int = 60_000) -> None:
        self.outbox = outbox
        self.link = link
        self.batch_items = max(1, min(batch_items, contract.MAX_BATCH_ITEMS))
        self.batch_bytes = min(batch_bytes, contract.MAX_BATCH_PAYLOAD)
        self.sent_live = 0  # counters for the logs and the tests
        self.sent_in_batches = 0
        self.batches = 0
        self._live_from: int | None = None  # seqs from here on were put since the last pump
        self._backlog = False  # a backlog is being sent (to say when it is all sent)
        self._update_health()

    def pump(self, max_batches: int = 10) -> int:
        """Send what waits: the newest message if it is new (live), then up to `max_batches`
        batches of the backlog, oldest first. Returns how many messages were delivered."""
        live_from, self._live_from = self._live_from, self.outbox.next_seq
        delivered = 0
        if self.link.connected:
            live = self._send_live(live_from)
            if live is not None:  # None: the link failed, the backlog waits for the next pump
                delivered = live + self._send_backlog(max_batches)
        self._update_health()
        return delivered

    # --- live -----------------------------------------------------------------------------

    def _send_live(self, live_from: int | None) -> int | None:
        """1 if the newest message went out live, 0 if there was none, None if sending failed."""
        newest = self.outbox.newest()
        if newest is None:
            return 0
        seq, channel, payload = newest
        if live_from is not None and seq < live_from:
            return 0  # history, not live: it goes with the backlog, in order
        if not self.link.send(channel, payload):
            return None
        self.outbox.remove([seq])
        self.sent_live += 1
        return 1

    # --- backlog --------------------------------------------------------------------------

    def _send_backlog(self, max_batches: int) -> int:
        delivered = 0
        for _ in range(max_batches):
            rows = self._next_batch()
            if not rows:
                break
            if not self.link.send(contract.BATCH, batch_payload(rows)):
                return delivered  # kept; tried again at a later pump
            self.outbox.remove(seq for seq, _, _ in rows)
            self.batches += 1
            self.sent_in_batches += len(rows)
            delivered += len(rows)
            self._backlog = True
        if self._backlog and not self.outbox.count():
            self._backlog = False
            log.info(say("pi_backlog_sent", count=self.sent_in_batches))
            self._update_health()
            self.link.send_status()  # tell the server at once: buffered is 0 again
        return delivered

    def _next_batch(self) -> list[Row]:
        """The oldest rows that fit in one batch of batch_items / batch_bytes."""
        rows = self.outbox.oldest(self.batch_items)
        size = _BATCH_OVERHEAD
        for index, (_, _, payload) in enumerate(rows):
            size += len(payload) + _CH_OVERHEAD + 1  # + the comma between items
            if index and size > self.batch_bytes:
                return rows[:index]
        return rows

    def _update_health(self) -> None:
        # The Link puts these into the retained `online` status at every (re)connect.
        self.link.health["buffered"] = self.outbox.count()
        self.link.health["dropped"] = self.outbox.dropped


def batch_payload(rows: list[Row]) -> bytes:
    """One `batch` message from outbox rows: each stored message plus its channel as "ch".
    The stored payloads were checked by Outbox.put(), so they decode."""
    return contract.encode(contract.batch([(ch, json.loads(payload)) for _, ch, payload in rows]))
