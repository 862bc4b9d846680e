# Drives firmware/lib/mk_device.py on the real MicroPython unix port for test_device.py,
# against the test bed's real Mosquitto (and the real collector behind it).
# Prints one JSON line per event.
#
#   micropython -X heapsize=... device_runner.py SERVER PORT USER PASSWORD TOWN DEVICE FLASH
#       COUNT INTERVAL_MS HOLD SYNC BUFFER_BYTES
#
#   FLASH        a folder standing in for the board's flash (seq file + offline buffer);
#                a second runner on the same folder is the board after a power cut
#   COUNT        readings the fake sensor makes, one every INTERVAL_MS
#   HOLD         0: run until COUNT readings are made and the buffer is empty, then exit.
#                n > 0: as soon as n messages wait in the buffer, stop measuring and do
#                nothing until killed (the test SIGKILLs it: a power cut with a backlog)
#   SYNC         1: the clock is "synced" (time.time() of the unix port is Unix time),
#                0: unsynced stamps (boot + up)
#   BUFFER_BYTES the offline buffer's size (a board has 64 KB; small to test a full one)
import gc
import json
import os
import sys
import time

gc.collect()
BASE = gc.mem_alloc()

import contract  # noqa: E402,F401 (measured: what importing the modules costs)
import mk_clock  # noqa: E402
import mk_device  # noqa: E402
import mk_mqtt  # noqa: E402
import mk_store  # noqa: E402

gc.collect()
LOADED = gc.mem_alloc()


def out(line):
    print(json.dumps(line))


def run(server, port, user, password, town, device, flash, count, interval_ms, hold, sync,
        buffer_bytes):
    try:  # noqa: SIM105 (MicroPython has no contextlib)
        os.mkdir(flash)
    except OSError:
        pass  # there already: the board after a power cut
    seqs = mk_store.SeqStore(flash + "/seq", block=10)
    buf = mk_store.RingBuffer(flash + "/buf", max_bytes=buffer_bytes,
                              segment_bytes=min(4096, buffer_bytes // 4))
    clock = mk_clock.Clock(time.ticks_ms, time.time, 0, boot=seqs.boot)
    if sync:
        clock.sync(lambda: None)  # stands in for ntptime.settime: the host's clock is right
    # Short timeouts and backoff so the test is quick; a board uses the defaults.
    link = mk_mqtt.Link(town, device, server, port, user, password, fw="test-0.1",
                        keepalive=10, timeout_s=2, backoff_ms=200, max_backoff_ms=500,
                        on_command=lambda msg: out({"op": "cmd", "msg": msg}))
    cfg = {"app": {"settings": {"status_s": 60}}}
    sensor = {"n": 0, "next": time.ticks_ms()}

    def read(now_ms):
        # A fake snow gauge: one reading every interval_ms, COUNT in all.
        if sensor["n"] >= count or time.ticks_diff(now_ms, sensor["next"]) < 0:
            return []
        sensor["next"] = time.ticks_add(sensor["next"], interval_ms)
        sensor["n"] += 1
        return [("reading", {"sensor": "snow_depth", "value": sensor["n"] / 10, "unit": "cm",
                             "quality": "reference"})]

    dev = mk_device.Device(cfg, link, clock, seqs, buf, read,
                           lambda text: out({"op": "log", "text": text}))
    out({"op": "start", "boot": seqs.boot, "buffered": buf.count(), "next_seq": seqs._next})
    peak = 0
    while True:
        for seq, sent in dev.step(time.ticks_ms()):
            out({"op": "made", "seq": seq, "sent": sent, "buffered": buf.count(),
                 "online": link.connected()})
        peak = max(peak, buf.count())
        if hold and buf.count() >= hold:
            out({"op": "hold", "buffered": buf.count()})
            while True:  # the power cut comes from outside
                time.sleep(1)
        if sensor["n"] >= count and buf.count() == 0:
            break
        time.sleep_ms(20)
    gc.collect()
    out({"op": "done", "made": dev.made, "live": dev.sent_live,
         "buffered_total": dev.buffered_total, "replayed": dev.replayed, "peak": peak,
         "attempts": link.attempts, "dropped": buf.dropped,
         "heap": {"modules": LOADED - BASE, "after": gc.mem_alloc() - BASE,
                  "free": gc.mem_free()}})
    link.close()  # goodbye: retained `offline` (the test clears it)


def main(args):
    run(args[0], int(args[1]), args[2], args[3], args[4], args[5], args[6], int(args[7]),
        int(args[8]), int(args[9]), args[10] == "1", int(args[11]))


main(sys.argv[1:])
