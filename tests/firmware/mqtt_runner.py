# Drives firmware/lib/mk_mqtt.py on the real MicroPython unix port for test_mqtt.py,
# against the test bed's real Mosquitto. Prints one JSON line per step.
#
#   micropython -X heapsize=... mqtt_runner.py flow SERVER PORT USER PASSWORD TOWN DEVICE N T0
#       connect (will + retained online), send N readings (seq 0..N-1, t = T0 + seq), then
#       stay online polling for commands until killed (the test SIGKILLs it: the will).
#   micropython ... mqtt_runner.py backoff SERVER BAD_PORT GOOD_PORT USER PASSWORD TOWN DEVICE T0
#       a closed port, then the right one, with a clock the runner moves by hand.
import gc
import json
import sys
import time

gc.collect()
BASE = gc.mem_alloc()

import contract  # noqa: E402 (measured: what importing the modules costs)
import mk_mqtt  # noqa: E402

gc.collect()
LOADED = gc.mem_alloc()


def out(line):
    print(json.dumps(line))


def flow(server, port, user, password, town, device, n, t0):
    def on_command(msg):
        out({"op": "cmd", "msg": msg})

    link = mk_mqtt.Link(town, device, server, port, user, password, on_command=on_command,
                        fw="test-0.1", keepalive=10)
    link.health["heap"] = gc.mem_free()
    out({"op": "connect", "ok": link.connect(), "error": link.last_error})
    acks = []
    for seq in range(n):
        msg = contract.reading(seq, t0 + seq, "snow_depth", 10 + seq / 10, "cm", "reference")
        acks.append(link.send(contract.READING, msg))
    gc.collect()
    out({"op": "sent", "acks": acks, "attempts": link.attempts, "error": link.last_error,
         "heap": {"base": BASE, "modules": LOADED - BASE, "after": gc.mem_alloc() - BASE,
                  "free": gc.mem_free()}})
    while True:  # online until the test kills us
        if not link.poll():
            out({"op": "lost", "error": link.last_error})
        time.sleep(0.05)


def backoff(server, bad_port, good_port, user, password, town, device, t0):
    clock = [1000]
    link = mk_mqtt.Link(town, device, server, bad_port, user, password, clock=lambda: clock[0],
                        backoff_ms=1000, max_backoff_ms=8000, timeout_s=5)
    results = []

    def step(label):
        msg = contract.reading(len(results), t0 + len(results), "air_temp", -3.5, "degC")
        try:
            ok = link.send(contract.READING, msg)
        except Exception as err:  # the test expects this never to happen
            ok = "raised " + repr(err)
        line = {"op": label, "ok": ok, "attempts": link.attempts, "failures": link.failures,
                "wait": None if link.next_try is None else link.next_try - clock[0],
                "error": link.last_error}
        results.append(line)
        out(line)

    for i in range(5):  # each failure doubles the wait, 1 s .. 8 s, each with jitter
        if i:
            clock[0] = link.next_try
        step("closed")
        clock[0] += 1
        step("too_soon")  # still backing off: no new attempt
    link.port = good_port  # the broker is back (here: the right port)
    step("too_soon_good")
    clock[0] = link.next_try
    step("recovered")
    step("again")
    link.close()


def main(args):
    if args[0] == "flow":
        flow(args[1], int(args[2]), args[3], args[4], args[5], args[6], int(args[7]),
             int(args[8]))
    elif args[0] == "backoff":
        backoff(args[1], int(args[2]), int(args[3]), args[4], args[5], args[6], args[7],
                int(args[8]))
    gc.collect()
    out({"op": "end", "alloc": gc.mem_alloc() - BASE})


main(sys.argv[1:])
