"""One more map viewer, in the bench's own process, that keeps every sample
with its time: the crowd (crowd.py) only adds up a whole run, but the soak
compares the first minute (before any fault) with the rest.

Like a browser's EventSource, it reconnects after a drop (and counts it).
"""

import json
import threading
import time
import urllib.error
import urllib.request

from collector.bench.sse import EventStream
from collector.bench.stack import HOST

RECONNECT_S = 3.0  # EventSource's usual retry


class LiveProbe:
    def __init__(self, port: int, path: str) -> None:
        self.url = f"http://{HOST}:{port}{path}"
        self.samples: list[tuple[int, float]] = []  # (position t ms, receive - t ms)
        self.drops = 0
        self.errors: dict[str, int] = {}
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="live-probe", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> dict:
        self.stopped.set()
        self.thread.join(10)
        return {"samples": len(self.samples), "drops": self.drops, "errors": self.errors}

    def _run(self) -> None:
        while not self.stopped.is_set():
            try:
                self._listen()
                self.drops += 1
            except (OSError, ValueError) as err:
                name = f"HTTP {err.code}" if isinstance(err, urllib.error.HTTPError) \
                    else type(err).__name__
                self.errors[name] = self.errors.get(name, 0) + 1
            self.stopped.wait(RECONNECT_S)

    def _listen(self) -> None:
        request = urllib.request.Request(self.url, headers={"Accept": "text/event-stream"})
        seen: dict[str, int] = {}
        with urllib.request.urlopen(request, timeout=60) as answer:
            events = EventStream()
            while not self.stopped.is_set() and (data := answer.read1(65536)):
                now_ms = time.time() * 1000
                for event, payload in events.feed(data):
                    self._event(event, json.loads(payload), now_ms, seen)

    def _event(self, event: str, msg: dict, now_ms: float, seen: dict[str, int]) -> None:
        if event == "snapshot":
            features = msg.get("vehicles", {}).get("features", ())
        elif event == "update":
            features = msg.get("vehicles") or ()
        else:
            return
        for feature in features:
            t = feature["properties"]["t"]
            key = feature.get("id") or feature["properties"]["id"]
            if seen.get(key, -1) >= t:
                continue
            seen[key] = t
            if event == "update":  # a snapshot's positions are old news by design
                self.samples.append((t, now_ms - t))

    def between(self, start_ms: float, end_ms: float) -> list[float]:
        return [delay for t, delay in list(self.samples) if start_ms <= t < end_ms]
