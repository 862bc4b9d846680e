# Runs the firmware apps' drivers + glue (snow_app, printer_app) against the fake
# hardware in tests/firmware/fakes on the real MicroPython unix port, and prints one
# JSON line per scenario: {"case": name, ...}. See test_apps_hw.py for the paths.
#
# Time is the runner's: it passes now_ms to app.read() in 100 ms steps (like a main
# loop with time.sleep_ms(100)), so nothing really sleeps except the 10 µs trigger.
import gc
import json

import ds18x20
import machine
import onewire
import printer_app
import snow_app

scenario = machine.scenario
STEP = 100


def show(case, **data):
    data["case"] = case
    print(json.dumps(data))


# --- printer ----------------------------------------------------------------

def printer_run(press=None, papers=((0, 60000),), end=70000):
    """LDR on ADC 26 (30000 empty, 12000 with paper), passive buzzer on PWM 16,
    silence button on Pin 14 (LOW = pressed) during `press` = (from, to) ms."""
    scenario.reset()
    app = printer_app.PrinterApp(
        printer_app.Ldr(machine.ADC(machine.Pin(26))),
        printer_app.PwmBuzzer(machine.PWM(machine.Pin(16))),
        printer_app.Button(machine.Pin(14, machine.Pin.IN, machine.Pin.PULL_UP)),
        alarm_after_s=30)
    beeps = []  # times when the PWM duty was not zero
    events = []
    t = -10000
    while t < end:
        paper = False
        for begin, stop in papers:
            paper = paper or begin <= t < stop
        scenario.adc[26] = 12000 if paper else 30000
        pressed = press is not None and press[0] <= t < press[1]
        scenario.pins[14] = 0 if pressed else 1
        for channel, fields in app.read(t):
            fields["ch"] = channel
            fields["at"] = t
            events.append(fields)
        if scenario.pwm[16]["duty"]:
            beeps.append(t)
        t += STEP
    return app, events, beeps


def printer_alarm():
    _app, events, beeps = printer_run()
    show("printer_alarm", events=events, beeps_first=beeps[:5], beeps_last=beeps[-2:],
         beeps=len(beeps), duty_after=scenario.pwm[16]["duty"], freq=scenario.pwm[16]["freq"],
         on_duty=printer_app.HALF_DUTY)


def printer_silence():
    _app, events, beeps = printer_run(press=(35000, 35300),
                                     papers=((0, 60000), (70000, 120000)), end=125000)
    show("printer_silence", events=events, before=[b for b in beeps if b < 35000][:2],
         in_silence=[b for b in beeps if 35000 <= b < 70000], after=[b for b in beeps
                                                                    if b >= 70000][:3],
         duty_after=scenario.pwm[16]["duty"])


def button_bounce():
    scenario.reset()
    button = printer_app.Button(machine.Pin(14, machine.Pin.IN, machine.Pin.PULL_UP))
    presses = []
    # 0-20 ms: contact bounce (10 ms steps), then held down until 200, released, pressed again
    pattern = [0, 1, 0, 1, 0] + [0] * 18 + [1] * 5 + [0] * 10
    for i in range(len(pattern)):
        scenario.pins[14] = pattern[i]
        if button.pressed(i * 10):
            presses.append(i * 10)
    show("button_bounce", presses=presses)


def tcrt_and_pin_buzzer():
    scenario.reset()
    app = printer_app.PrinterApp(printer_app.Tcrt5000(machine.Pin(15, machine.Pin.IN)),
                                 printer_app.PinBuzzer(machine.Pin(17, machine.Pin.OUT)),
                                 alarm_after_s=5)
    names = []
    high = []
    for t in range(0, 12000, STEP):
        scenario.pins[15] = 0 if 1000 <= t < 9000 else 1  # DO is LOW while it sees paper
        for _channel, fields in app.read(t):
            names.append([fields["event"], t])
        if scenario.outputs[17]:
            high.append(t)
    show("tcrt_pin_buzzer", events=names, first_high=high[:2], high=len(high),
         after=scenario.outputs[17])


# --- snow -------------------------------------------------------------------

def snow_run(sensor, thermo, feed=None, limit=20000, **options):
    """Step app.read until a measurement has finished (or limit ms)."""
    app = snow_app.SnowApp(sensor, thermo, 200,
                           battery=snow_app.Battery(machine.ADC(28), ratio=3), **options)
    t = 0
    while t < limit:
        if feed:
            feed(t)
        out = app.read(t)
        if out:
            return app, out, t
        t += STEP
    return app, [], t


def jsn():
    return snow_app.JsnSr04t(machine.Pin(2, machine.Pin.OUT), machine.Pin(3, machine.Pin.IN))


def thermometer():
    return snow_app.Ds18b20(ds18x20.DS18X20(onewire.OneWire(machine.Pin(6))))


def depth_of(out):
    depth = None
    problems = []
    for channel, fields in out:
        if channel == "reading" and fields["sensor"] == "snow_depth":
            depth = [fields["value"], fields["quality"]]
        if channel == "event" and fields["event"] == "snow_problem":
            problems.append(fields["text"])
    return depth, problems


def snow_jsn():
    scenario.reset()
    scenario.air_c = -10
    scenario.distance_cm = 200 - 35
    scenario.adc[28] = 24000  # 24000/65535 * 3.3 V * 3 = 3.63 V
    _app, out, at = snow_run(jsn(), thermometer())
    depth, problems = depth_of(out)
    show("snow_jsn", depth=depth, problems=problems, out=out, at=at,
         triggers=scenario.triggers, pulses=scenario.pulses)
    # The same echoes without the thermometer, assuming 20 °C: the error compensation removes.
    scenario.reset()
    scenario.air_c = -10
    scenario.distance_cm = 165
    scenario.ds_present = False
    _app, out, _at = snow_run(jsn(), thermometer(), fallback_temp_c=20)
    show("snow_jsn_uncompensated", depth=depth_of(out)[0])
    scenario.ds_present = False
    _app, out, _at = snow_run(jsn(), thermometer())
    show("snow_jsn_no_thermometer", result=depth_of(out))


def snow_calibrate():
    """Installed at 200 cm in config.json but really at 182 cm, on 12 cm of snow, at -8 °C:
    calibrate with the depth a staff member measured with a ruler (12 cm)."""
    scenario.reset()
    scenario.air_c = -8
    scenario.distance_cm = 170
    saved = []
    app = snow_app.SnowApp(jsn(), thermometer(), 200, on_calibrated=saved.append)
    t = 0
    before = None
    while before is None:  # a normal measurement first: wrong by the 18 cm mount error
        before = depth_of(app.read(t))[0]
        t += STEP
    app.calibrate(12)
    out = []
    while not out:
        out = app.read(t)
        t += STEP
    after = None
    while after is None:
        after = depth_of(app.read(t))[0]
        t += STEP
    show("snow_calibrate", before=before, out=out, saved=saved, after=after,
         mount=app.gauge.mount_cm)
    scenario.echo = False  # powder snow: nothing to measure, the old height stays
    app.calibrate(0)
    out = []
    while not out:
        out = app.read(t)
        t += STEP
    show("snow_calibrate_no_echo", out=out, mount=app.gauge.mount_cm)


def snow_absorbed():
    scenario.reset()
    scenario.air_c = -10
    scenario.distance_cm = 165
    scenario.echo = False
    _app, out, _at = snow_run(jsn(), thermometer())
    show("snow_absorbed", result=depth_of(out), pulses=scenario.pulses)


def snow_uart(bad_at=(), limit=20000, assumed_c=None):
    scenario.reset()
    scenario.air_c = -10
    sensor = snow_app.A02yyuw(machine.UART(1, 9600), assumed_c=assumed_c)
    good = snow_app.a02_frame(1650)  # 165.0 cm, as the module itself reports it
    bad = bytes((0xFF, 0x01, 0x2C, 0x00))  # 30.0 cm with a wrong checksum
    sent = [0]

    def feed(t):
        if t % 100 == 0:  # the module sends a frame about every 100 ms
            scenario.uart_rx += bad if sent[0] in bad_at else good
            sent[0] += 1

    _app, out, _at = snow_run(sensor, thermometer(), feed=feed, limit=limit)
    return depth_of(out), sensor.bad_frames


def snow_a02():
    result, bad = snow_uart()
    show("snow_a02", result=result, bad_frames=bad)
    result, bad = snow_uart(bad_at=(9, 11))  # two damaged frames among the pings
    show("snow_a02_checksum", result=result, bad_frames=bad)
    result, bad = snow_uart(bad_at=range(100))  # every frame damaged
    show("snow_a02_all_bad", result=result, bad_frames=bad)
    sensor = snow_app.A02yyuw(machine.UART(1, 9600))
    scenario.uart_rx = b"\x01\x02" + snow_app.a02_frame(1234)[:3]  # noise, half a frame
    first = sensor.ping()
    scenario.uart_rx = snow_app.a02_frame(1234)[3:] + snow_app.a02_frame(1240)
    show("snow_a02_resync", first=first, second=sensor.ping())


def snow_schedule():
    """Once a minute, 750 ms for the DS18B20, then 5 pings 100 ms apart; nothing between."""
    scenario.reset()
    scenario.air_c = -10
    scenario.distance_cm = 165
    app = snow_app.SnowApp(jsn(), thermometer(), 200)
    made = []
    for t in range(0, 185000, STEP):
        out = app.read(t)
        if out:
            made.append([t, len(out)])
    show("snow_schedule", made=made, pulses=scenario.pulses)


def heap():
    if not hasattr(gc, "mem_alloc"):
        show("heap", measured=False)
        return
    scenario.reset()
    scenario.air_c = -10
    scenario.distance_cm = 165
    snow = snow_app.SnowApp(jsn(), thermometer(), 200)
    printer = printer_app.PrinterApp(printer_app.Ldr(machine.ADC(26)),
                                     printer_app.PwmBuzzer(machine.PWM(16)))

    def run(first, last):
        for i in range(first, last):
            scenario.adc[26] = 12000 if i % 1000 > 500 else 30000
            snow.read(i * STEP)
            printer.read(i * STEP)

    run(0, 2000)
    gc.collect()
    before = gc.mem_alloc()
    run(2000, 20000)  # 30 minutes of loop steps
    gc.collect()
    show("heap", measured=True, growth=gc.mem_alloc() - before, free=gc.mem_free())


for scenario_fn in (printer_alarm, printer_silence, button_bounce, tcrt_and_pin_buzzer,
                    snow_jsn, snow_calibrate, snow_absorbed, snow_a02, snow_schedule, heap):
    scenario_fn()
    gc.collect()
