# Runs the firmware apps' pure logic through field scenarios and prints one
# JSON line per scenario: {"case": name, ...what happened}. Written for both
# interpreters: the tests run it with CPython and with the real MicroPython
# unix port (small heap) and check the same lines.
#
#   micropython -X heapsize=64k apps_runner.py
#   MICROPYPATH=firmware/apps:<folder with machikit/contract.mpy>  (see test_apps_logic.py)
#
# No randomness from the interpreter: a small LCG gives both the same jitter.
import gc
import json

import printer_logic
import snow_logic

T0 = 1736895600000  # 2025-01-15 08:00 JST
MIDNIGHT_15 = 1736866800000  # 2025-01-15 00:00 JST
MINUTE = 60000


def show(case, **data):
    data["case"] = case
    print(json.dumps(data))


class Jitter:
    """Deterministic numbers in -1..1 (same on every interpreter)."""

    def __init__(self, seed):
        self.x = seed

    def next(self):
        self.x = (1103515245 * self.x + 12345) % 2147483648
        return self.x * 2 / 2147483648 - 1


def echo_us(distance, temp_c):
    """What the sensor measures for a surface `distance` cm away (whole µs,
    like machine.time_pulse_us), using the true speed of sound."""
    return round(distance * 20000 / snow_logic.speed_of_sound(temp_c))


def pings(distance, temp_c, n=5):
    return [echo_us(distance, temp_c)] * n


# --- snow ------------------------------------------------------------------

def snow_cold():
    gauge = snow_logic.SnowDepth(200)
    echoes = pings(200 - 35, -10)
    got = gauge.measure(echoes, -10, T0)
    fixed = 200 - echoes[0] * 343 / 20000  # what a gauge assuming 343 m/s would say
    error_2m = 200 * 343 / snow_logic.speed_of_sound(-10) - 200
    show("snow_cold", depth=got["depth_cm"], problem=got["problem"],
         fixed_343_depth=fixed, fixed_343_error_2m=error_2m,
         c_minus10=snow_logic.speed_of_sound(-10), c_0=snow_logic.speed_of_sound(0),
         c_20=snow_logic.speed_of_sound(20))


def snow_median():
    gauge = snow_logic.SnowDepth(200)
    echoes = pings(165, 0, 4)
    echoes.insert(2, echo_us(60, 0))  # a snowflake or a bird: one wild ping
    got = gauge.measure(echoes, 0, T0)
    show("snow_median", depth=got["depth_cm"], problem=got["problem"], pings=got["pings"],
         median_odd=snow_logic.median([5, 1, 3]), median_even=snow_logic.median([4, 1, 3, 2]),
         median_empty=snow_logic.median([]))


def snow_problems():
    gauge = snow_logic.SnowDepth(200)
    results = {}
    tries = (
        ("absorbed", [None, 0, None, echo_us(165, 0), None]),  # powder snow eats the echo
        ("too_far", pings(480, 0)),  # beyond the sensor's 450 cm
        ("blind_zone", pings(15, 0)),  # snow piled up to the sensor
        ("below_ground", pings(230, 0)),  # multipath: farther than the ground
    )
    for name, echoes in tries:
        got = gauge.measure(echoes, 0, T0)
        results[name] = [got["depth_cm"], got["problem"]]
    gauge = snow_logic.SnowDepth(200, range_cm=snow_logic.A02YYUW)
    got = gauge.measure(pings(15, 0), 0, T0)  # the A02YYUW sees down to 3 cm
    results["a02yyuw_close"] = [got["depth_cm"], got["problem"]]
    gauge = snow_logic.SnowDepth(200)
    bare = gauge.measure(pings(201, 0), 0, T0)  # settled ground: clamped to 0
    results["bare_ground"] = [bare["depth_cm"], bare["problem"]]
    show("snow_problems", **results)


def snow_jump():
    gauge = snow_logic.SnowDepth(200, max_jump_cm=10, confirm_n=3)
    steps = []
    for depth in (35, 35.4, 90, 35.6, 60, None, 60.5, 61, 61.2, 50.5):
        echoes = [None] * 5 if depth is None else pings(200 - depth, 0)
        got = gauge.measure(echoes, 0, T0)
        steps.append([got["depth_cm"], got["problem"]])
    show("snow_jump", steps=steps)


def snow_hourly():
    hours = snow_logic.HourlyDepth()
    depths = [30.0, 30.2, 30.4, 30.6, 31.0, 30.8,  # 08:00..08:50 JST
              31.2, 31.6, 32.0, 32.4, 36.0, 32.8]  # 09:00..09:50 (36.0: one odd value)
    hourly = []
    for i in range(len(depths)):
        for item in hours.add(depths[i], T0 + i * 10 * MINUTE):
            if item["event"] == "hourly":
                hourly.append(item)
    for item in hours.add(None, T0 + 120 * MINUTE):  # 10:00, a failed measurement
        hourly.append(item)
    unsynced = snow_logic.HourlyDepth()
    quiet = unsynced.add(30.0, 5000) + unsynced.add(30.0, 2 * 3600000)  # ms since boot
    show("snow_hourly", hourly=hourly, t0=T0, unsynced=quiet)


def jitter_run(pattern, hours_n):
    """Depth 35.3 cm with ±1 cm of jitter, one reading a minute, then 3 cm of snow."""
    gauge = snow_logic.SnowDepth(200)
    hours = snow_logic.HourlyDepth()
    noise = Jitter(12345)
    changes = []
    hourly = []
    flagged = 0
    minutes = hours_n * 60
    for i in range(minutes + 60):
        if pattern == "uniform":
            j = noise.next()
        elif pattern == "alternating":
            j = 1 if i % 2 else -1
        else:  # "square": ten readings at +1, ten at -1: the medians reach both edges
            j = 1 if (i // 10) % 2 else -1
        true = 35.3 + (3 if i >= minutes else 0) + j
        got = gauge.measure(pings(200 - true, -5), -5, T0 + i * MINUTE)
        if got["problem"]:
            flagged += 1
        for item in hours.add(got["depth_cm"], T0 + i * MINUTE):
            if item["event"] == "snow_change":
                changes.append([i, item["value"]])
                del changes[10:]  # a broken noise rule must fail the test, not the heap
            elif i <= minutes:
                hourly.append([item["depth_cm"], item["change_cm"]])
    return {"changes": changes, "hourly": hourly, "flagged": flagged, "minutes": minutes}


def snow_jitter():
    for pattern in ("uniform", "alternating", "square"):
        show("snow_jitter_" + pattern, **jitter_run(pattern, 6))


def snow_calibrate():
    echoes = pings(198.3, 5, 4)
    echoes.append(None)  # one lost echo (no [*a, b] in MicroPython)
    show("snow_calibrate", bare=snow_logic.calibrate_mount(echoes, 5),
         with_snow=snow_logic.calibrate_mount(echoes, 5, known_depth_cm=12))
    try:
        snow_logic.calibrate_mount([None, None, 9000], 5)
        show("snow_calibrate_refused", refused=False)
    except ValueError:
        show("snow_calibrate_refused", refused=True)


# --- printer ---------------------------------------------------------------

def run_watch(watch, start, end, level, step=100, buzz=False):
    """Feed watch.update_level(level(rel_ms)) every `step` ms from start to end.

    Returns (events with times relative to T0, buzzer-on times)."""
    events = []
    beeps = []
    t = start
    while t < end:
        for ev in watch.update_level(level(t), T0 + t):
            ev["t"] = ev["t"] - T0
            ev["at"] = t  # when the event was returned
            events.append(ev)
        if buzz and watch.buzzer_on(T0 + t):
            beeps.append(t)
        t += step
    return events, beeps


def paper_level(periods, paper=12000, empty=30000):
    def level(t):
        for begin, end in periods:
            if begin <= t < end:
                return paper
        return empty
    return level


def printer_alarm():
    watch = printer_logic.PaperWatch(alarm_after_s=30)
    events, beeps = run_watch(watch, -10000, 70000, paper_level([(0, 60000)]), buzz=True)
    show("printer_alarm", events=events, beeps_first=beeps[:5], beeps_last=beeps[-2:],
         beeps=len(beeps), state=watch.state, buzzer_after=watch.buzzer_on(T0 + 70000))


def printer_room_light():
    out = {}
    for name, change in (("brighter", 9000), ("darker", -9000)):
        watch = printer_logic.PaperWatch()
        noise = Jitter(7)

        def level(t, change=change, noise=noise):  # 30 % over an hour, ±300 of noise
            return 30000 + change * t // 3600000 + int(noise.next() * 300)

        events, _ = run_watch(watch, 0, 3600000, level, step=1000)
        out[name] = {"events": events, "state": watch.state, "baseline": watch.baseline}
    show("printer_room_light", **out)


def printer_flicker():
    watch = printer_logic.PaperWatch(debounce_ms=1000)
    shadows = [(5000, 5500), (8000, 8900), (12000, 12300)]  # a hand, a sleeve, a head
    t = 20000
    while t < 30000:  # a flickering lamp: 200 ms dark, 200 ms bright, for 10 s
        shadows.append((t, t + 200))
        t += 400
    events, _ = run_watch(watch, 0, 40000, paper_level(shadows))
    brighter = paper_level([(0, 60000)], paper=45000)  # the room lights go on
    lower = printer_logic.PaperWatch(debounce_ms=1000, direction=-1)  # paper lowers raw
    ignored, _ = run_watch(lower, 0, 5000, brighter)  # the other direction: not paper
    show("printer_flicker", events=events, state=watch.state, wrong_direction=ignored)


def printer_silence():
    watch = printer_logic.PaperWatch(alarm_after_s=30)
    level = paper_level([(0, 50000), (70000, 120000)])
    events, beeps = run_watch(watch, -5000, 35000, level, buzz=True)
    for ev in watch.silence(T0 + 35000):
        ev["t"] = ev["t"] - T0
        events.append(ev)
    again = watch.silence(T0 + 36000)  # a second press: nothing new
    more, later = run_watch(watch, 35000, 130000, level, buzz=True)
    show("printer_silence", events=events + more, before=beeps[:2], after=later[:3],
         in_silence=[b for b in later if b < 70000], again=again)


def printer_daily():
    watch = printer_logic.PaperWatch(alarm_after_s=30, debounce_ms=1000)
    start = 1736952600000  # 2025-01-15 23:50 JST
    papers = [(0, 45000), (300000, 310000)]  # 23:50 for 45 s, 23:55 for 10 s
    daily = []
    t = 0
    while t < 660000:  # until 00:01 JST: a digital sensor read every 500 ms
        present = False
        for begin, end in papers:
            present = present or begin <= t < end
        for ev in watch.update_present(present, start + t):
            if ev["event"] == "daily_counts":
                daily.append(ev)
        t += 500
    utc_midnight = 1736985590000  # 2025-01-16 08:59:50 JST = 23:59:50 UTC
    for i in range(40):
        for ev in watch.update_present(False, utc_midnight + i * 500):
            daily.append(ev)
    show("printer_daily", daily=daily, midnight_15=MIDNIGHT_15, counts=watch.counts)


# --- messages and heap -----------------------------------------------------

def messages():
    try:
        from machikit import contract
    except ImportError:
        import contract
    items = [snow_logic.depth_message(1, T0, 35.2)]
    items += snow_logic.to_messages(2, {"event": "hourly", "t": T0, "depth_cm": 35.2,
                                        "change_cm": -1.5, "n": 6})
    items += snow_logic.to_messages(4, {"event": "snow_change", "t": T0, "value": 3.0,
                                        "unit": "cm", "depth_cm": 38.3})
    for ev in ({"event": "paper_arrived", "t": T0},
               {"event": "paper_alarm", "t": T0, "value": 30, "unit": "s"},
               {"event": "paper_taken", "t": T0, "value": 60, "unit": "s"},
               {"event": "silenced", "t": T0},
               {"event": "daily_counts", "t": MIDNIGHT_15, "arrived": 2, "alarms": 1,
                "taken": 2, "longest_wait_s": 45}):
        items += printer_logic.to_messages(10 + len(items), ev)
    checked = []
    for channel, msg in items:
        try:
            contract.decode(channel, contract.encode(msg), T0 + MINUTE)
            checked.append([channel, msg.get("sensor") or msg.get("event"),
                            msg.get("quality"), msg["seq"], "ok"])
        except contract.ContractError as err:
            checked.append([channel, err.reason, err.detail])
    show("messages", checked=checked)


def heap():
    """Bytes the logic keeps: after a warm-up, a long run must not grow (bounded lists)."""
    if not hasattr(gc, "mem_alloc"):
        show("heap", measured=False)
        return
    gauge = snow_logic.SnowDepth(200)
    hours = snow_logic.HourlyDepth()
    watch = printer_logic.PaperWatch()

    def run(first, last):
        for i in range(first, last):
            now = T0 + i * MINUTE
            hours.add(gauge.measure(pings(164.7 + i % 3, -5), -5, now)["depth_cm"], now)
            watch.update_level(30000 + (15000 if i % 100 > 50 else 0), T0 + i * 1000)
            watch.buzzer_on(T0 + i * 1000)

    run(0, 200)  # fills the windows and makes the first hourly values
    gc.collect()
    before = gc.mem_alloc()
    run(200, 3200)  # two days of snow readings, 50 minutes of light readings
    gc.collect()
    show("heap", measured=True, growth=gc.mem_alloc() - before, free=gc.mem_free())


for scenario in (snow_cold, snow_median, snow_problems, snow_jump, snow_hourly, snow_jitter,
                 snow_calibrate, printer_alarm, printer_room_light, printer_flicker,
                 printer_silence, printer_daily, messages, heap):
    scenario()
    gc.collect()
