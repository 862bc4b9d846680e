# main.py — what a machikit board does from power-on, forever. (docs/firmware.md)
#
# Order matters: read the settings, count this start (BootGuard) before anything risky,
# start the watchdog, then Wi-Fi, clock, MQTT, the app, and the loop. Nothing here waits for
# the network: a board after a power cut must measure (into flash) until the router is back.
# Any error ends in machine.reset(): an uncaught error would leave the board at the REPL,
# dead until someone comes with a USB cable. BootGuard turns a crash loop into safe mode.

import sys
import time

import machine
import mk_boot
import mk_config
import mk_safe
from mk_boot import log

FW = "0.1.0"
CONFIG = "config.json"  # relative: the board starts in "/", a test in its stand-in folder
STATE = "state"
CRASH_LIMIT = 4  # 3 crashed starts in a row -> the 4th start is in safe mode
HEALTHY_MS = 60000  # this long without a crash (or one acknowledged message) = healthy
WDT_MS = 8300  # the longest an RP2040 allows; mk_safe clamps it anyway
APPS = ("snow", "printer")


def run():
    mk_boot.ensure_dir(STATE)
    cfg = mk_config.load(CONFIG, STATE + "/remote")
    guard = mk_safe.BootGuard(STATE + "/boots", limit=CRASH_LIMIT)
    reset = mk_boot.reset_name(machine)
    count = guard.enter_boot(power_on=reset == "power_on")
    log("machikit %s 起動 / start: reset=%s, start %d in a row" % (FW, reset, count))
    wdt = mk_safe.Watchdog(lambda ms: machine.WDT(timeout=ms), WDT_MS)
    if cfg["ok"] and cfg["app"]["name"] not in APPS:
        cfg["ok"] = False
        cfg["problems"].append(mk_config.problem(
            "設定 app.name は snow か printer にしてください", "app.name must be snow or printer"))
    if not cfg["ok"]:
        not_configured(cfg, guard, wdt)
    configured(cfg, guard, wdt, reset)


def not_configured(cfg, guard, wdt):
    # No setup mode (mk_config): say what is wrong once a minute and wait for a fixed file
    # (copied over USB, then a reset). Running like this is not a crash.
    nag = mk_config.Nag(cfg["problems"], time.ticks_ms, log)
    started = time.ticks_ms()
    while True:
        nag.poll()
        if time.ticks_diff(time.ticks_ms(), started) >= HEALTHY_MS:
            guard.mark_healthy()
        wdt.feed()
        time.sleep_ms(500)


def configured(cfg, guard, wdt, reset):
    import mk_clock
    import mk_device
    import mk_mqtt
    import mk_store
    import mk_wifi
    import network
    import ntptime

    wifi = mk_wifi.Wifi(network, cfg["wifi"], log)
    seqs = mk_store.SeqStore(STATE + "/seq")
    buf = mk_store.RingBuffer("buffer")
    clock = mk_clock.Clock(time.ticks_ms, time.time, mk_clock.epoch_offset_s(time.gmtime),
                           boot=seqs.boot)
    app = None

    def on_command(msg):
        mk_boot.calibrate(app, msg)  # an action, taken out before the settings
        # Only whitelisted settings (mk_config.SETTINGS); Wi-Fi and passwords never remotely.
        changed, refused = mk_config.apply_remote(cfg, msg, STATE + "/remote")
        for line in refused:
            log(line)
        if changed:
            log("遠隔設定 / remote settings: %s" % changed)
            mk_boot.apply_settings(app, cfg["app"]["settings"])

    b, d = cfg["broker"], cfg["device"]
    # timeout_s=5: a dead broker must not hold one loop round past the watchdog (8.3 s).
    link = mk_mqtt.Link(d["town"], d["name"], b["host"], b["port"], d["user"], d["password"],
                        tls=b["tls"], fw=FW, on_command=on_command, timeout_s=5,
                        cadata=b.get("cadata"))
    if b["tls"] and not b.get("ca"):
        log("ブローカーの証明書を確かめません（broker.ca がありません）/ the broker's "
            "certificate is NOT checked: no broker.ca")
    if guard.safe:
        # Safe mode: connectivity and status only, so the board can be fixed remotely or
        # over USB. The app is what crashed, so it is not even built.
        link.health["reset"] = "safe_mode"
        log("セーフモード（起動失敗が続いたためアプリは動かしません）/ SAFE MODE: %d failed "
            "starts in a row, the app is not started" % (guard.count - 1))
        read = lambda now: ()  # noqa: E731
    else:
        link.health["reset"] = reset
        app = mk_boot.make_app(cfg, clock)
        read = app.read
        log("アプリ / app: %s" % cfg["app"]["name"])
    dev = mk_device.Device(cfg, link, clock, seqs, buf, read, log)
    started = time.ticks_ms()
    while True:
        now = time.ticks_ms()
        if wifi.poll(now):
            link.health["rssi"] = wifi.rssi()
            if clock.poll(ntptime.settime):
                log("時刻同期 / clock synced (NTP)")
        dev.step(now)  # measures and buffers even while offline; the Link backs off
        if not guard.healthy and (dev.sent_live or dev.replayed
                                  or time.ticks_diff(now, started) >= HEALTHY_MS):
            if guard.mark_healthy():
                log("正常に動作中 / running fine: next start is a normal one")
        if mk_boot.sleep_due(cfg, app, dev, time.ticks_diff(now, started)):
            mk_boot.deep_sleep(machine, app, link, guard, now)
        wdt.feed()  # only here: "fed" means the loop goes round
        time.sleep_ms(50)  # the printer buzzer pattern needs a round every ~100 ms


try:
    run()
except Exception as err:
    # Print why, then restart: the crash count is already saved, so a crash loop ends in
    # safe mode. The pause keeps the log readable and a loop from hammering the broker.
    log("エラーで再起動します / crashed, restarting: %r" % (err,))
    sys.print_exception(err)
    time.sleep(1)
    machine.reset()
