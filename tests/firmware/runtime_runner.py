# Drives firmware/lib/mk_config.py, mk_clock.py and mk_safe.py on the real MicroPython unix
# port for test_runtime_parts.py. One run = one "boot" of a device; a restart is the next run.
# Time, NTP and the watchdog are fakes defined here, so nothing waits for real.
#
#   micropython -X heapsize=64k runtime_runner.py config CONFIG [REMOTE]
#   micropython ... runtime_runner.py remote CONFIG REMOTE CMD_JSON
#   micropython ... runtime_runner.py nag STEP_MS...
#   micropython ... runtime_runner.py clock OFFSET_S START_TICKS OP...
#       OPs: w:MS (time passes), ok:UNIX_S (NTP answers, RTC set to that), fail (NTP
#            fails), s (stamp), p:ok:UNIX_S / p:fail (poll: asks NTP only when due)
#   micropython ... runtime_runner.py boot PATH LIMIT POWER_ON(0/1) HEALTHY(0/1) [clear]
#   micropython ... runtime_runner.py wdt TIMEOUT_MS [MAX_MS]
#   micropython ... runtime_runner.py epoch
#   micropython ... runtime_runner.py wifi OP...
#       OPs: w:MS (time passes), p (poll), ap:on / ap:off (the access point appears or goes
#            away), busy (the next connect() raises OSError, as a radio still busy does)
#
# Each prints JSON lines; the last is {"op": "end", "alloc": heap bytes still in use}.
import gc
import json
import sys
import time

# Imported per command, not here: compiling all three from source at once (plus mk_store and
# this file) does not fit in the 64 KB heap; a board gets .mpy files and never compiles.
mk_clock = mk_config = mk_safe = mk_wifi = None


def show(op, **data):
    data["op"] = op
    print(json.dumps(data))


def run_config(path, remote):
    cfg = mk_config.load(path, remote)
    show("config", ok=cfg["ok"], problems=cfg["problems"], cfg=cfg)


def run_remote(path, remote, cmd):
    cfg = mk_config.load(path, remote)
    changed, refused = mk_config.apply_remote(cfg, cmd, remote)
    show("remote", changed=changed, refused=refused, settings=cfg["app"]["settings"],
         wifi=cfg["wifi"], device=cfg["device"])
    again = mk_config.load(path, remote)  # what the next start sees
    show("reload", settings=again["app"]["settings"])


class FakeTicks:
    """time.ticks_ms that moves only when told, and wraps at 2**30 like the real one."""

    def __init__(self, start=0):
        self.now = start

    def __call__(self):
        return self.now

    def wait(self, ms):
        self.now = (self.now + ms) & ((1 << 30) - 1)


def run_nag(steps):
    ticks = FakeTicks()
    logged = []
    nag = mk_config.Nag(["p1", "p2"], ticks, logged.append)
    polls = []
    for step in steps:
        ticks.wait(int(step))
        polls.append(nag.poll())
    show("nag", polls=polls, lines=len(logged), first=logged[:3])


class FakeRtc:
    """What ntptime.settime() + time.time() do: settime sets the seconds, or raises."""

    def __init__(self, ticks):
        self.ticks = ticks
        self.answer = None  # seconds since the port's epoch that NTP will give
        self.base = 0
        self.base_ticks = 0
        self.calls = 0

    def settime(self):
        self.calls += 1
        if self.answer is None:
            raise OSError(110)  # ETIMEDOUT, as ntptime raises on a lost UDP reply
        self.base = self.answer
        self.base_ticks = self.ticks()

    def time(self):
        return self.base + mk_clock.ticks_diff(self.ticks(), self.base_ticks) // 1000


def run_clock(offset, start, ops):
    ticks = FakeTicks(start)
    rtc = FakeRtc(ticks)
    clock = mk_clock.Clock(ticks, rtc.time, offset, boot=7, resync_h=6, retry_ms=10000,
                           retry_max_ms=1800000)
    for op in ops:
        parts = op.split(":")
        line = {}
        if parts[0] == "w":
            ticks.wait(int(parts[1]))
            continue
        if parts[0] == "p":
            rtc.answer = int(parts[2]) if parts[1] == "ok" else None
            line["did"] = clock.poll(rtc.settime)
        elif parts[0] == "ok":
            rtc.answer = int(parts[1])
            line["did"] = clock.sync(rtc.settime)
        elif parts[0] == "fail":
            rtc.answer = None
            line["did"] = clock.sync(rtc.settime)
        elif parts[0] != "s":
            raise ValueError(op)
        line["stamp"] = clock.stamp()
        line["synced"] = clock.synced
        line["failures"] = clock.failures
        line["next"] = clock.next_try_in()
        line["calls"] = rtc.calls
        show(op, **line)


def run_boot(path, limit, power_on, healthy, extra):
    guard = mk_safe.BootGuard(path, limit)
    count = guard.enter_boot(power_on == "1")
    marked = guard.mark_healthy() if healthy == "1" else None
    if extra == ["clear"]:
        guard.clear()
    show("boot", count=count, safe=guard.safe, marked=marked)


class FakeWdt:
    def __init__(self, timeout):
        self.timeout = timeout
        self.fed = 0

    def feed(self):
        self.fed += 1


def run_wdt(timeout, max_ms):
    made = []

    def make(ms):
        made.append(FakeWdt(ms))
        return made[-1]

    if max_ms is None:
        wdt = mk_safe.Watchdog(make, timeout)
    else:
        wdt = mk_safe.Watchdog(make, timeout, max_ms)
    for _ in range(3):
        wdt.feed()
    show("wdt", timeout=made[0].timeout, made=len(made), fed=made[0].fed,
         clamped=wdt.clamped)


class FakeRadio:
    """network.WLAN of a Pico W: connect() returns at once, the join finishes later (here:
    at the next look, if the access point is there)."""

    def __init__(self, net):
        self.net = net
        self.joining = False
        self.joined = False

    def active(self, on=None):
        return True

    def connect(self, ssid, password=None):
        self.net.connects += 1
        if self.net.busy:
            self.net.busy = False
            raise OSError(-1)
        self.joining = True

    def disconnect(self):
        self.net.disconnects += 1
        self.joining = self.joined = False

    def isconnected(self):
        if self.joining and self.net.ap:
            self.joining, self.joined = False, True
        if not self.net.ap:
            self.joined = False
        return self.joined

    def status(self, what=None):
        if what == "rssi":
            return -70
        return 3 if self.joined else 1  # STAT_GOT_IP, else STAT_CONNECTING

    def ifconfig(self):
        return ("192.0.2.10", "255.255.255.0", "192.0.2.1", "192.0.2.1")


class FakeNetwork:
    STA_IF = 0

    def __init__(self):
        self.ap = False
        self.busy = False
        self.connects = 0
        self.disconnects = 0
        self.code = None
        self.radio = FakeRadio(self)

    def country(self, code):
        self.code = code

    def WLAN(self, interface):  # noqa: N802 (the network module's own name)
        return self.radio


def run_wifi(ops):
    net = FakeNetwork()
    logged = []
    wifi = mk_wifi.Wifi(net, {"ssid": "town-hall", "password": "pw"}, logged.append)
    now = 0
    for op in ops:
        if op.startswith("w:"):
            now += int(op[2:])
        elif op == "ap:on":
            net.ap = True
        elif op == "ap:off":
            net.ap = False
        elif op == "busy":
            net.busy = True
        else:
            up = wifi.poll(now)
            show("poll", at=now, up=up, connects=net.connects, disconnects=net.disconnects,
                 next=wifi.next_try, failures=wifi.failures, log=logged[:])
            del logged[:]
    show("wifi", country=net.code)


def run_epoch():
    show("epoch", here=mk_clock.epoch_offset_s(time.gmtime),
         y2000=mk_clock.epoch_offset_s(lambda s: (2000, 1, 1, 0, 0, 0, 5, 1)),
         y1970=mk_clock.epoch_offset_s(lambda s: (1970, 1, 1, 0, 0, 0, 3, 1)))


def main(args):
    global mk_clock, mk_config, mk_safe, mk_wifi
    kind = args[0]
    if kind in ("config", "remote", "nag"):
        import mk_config
    elif kind in ("clock", "epoch"):
        import mk_clock
    elif kind == "wifi":
        import mk_wifi
    else:
        import mk_safe
    if kind == "config":
        run_config(args[1], args[2] if len(args) > 2 else None)
    elif kind == "remote":
        run_remote(args[1], args[2], args[3])
    elif kind == "nag":
        run_nag(args[1:])
    elif kind == "clock":
        run_clock(int(args[1]), int(args[2]), args[3:])
    elif kind == "boot":
        run_boot(args[1], int(args[2]), args[3], args[4], args[5:])
    elif kind == "wdt":
        run_wdt(int(args[1]), int(args[2]) if len(args) > 2 else None)
    elif kind == "epoch":
        run_epoch()
    elif kind == "wifi":
        run_wifi(args[1:])
    else:
        raise ValueError(kind)
    gc.collect()
    show("end", alloc=gc.mem_alloc())


main(sys.argv[1:])
