"""Job config files: /etc/machikit/<job>.toml, read with tomllib.

One file per job (printer, snow, gps) with three sections:

    [device]  town, name, user, password   who this Pi is on the broker
    [broker]  host, port, tls, cafile       where the messages go
    [<job>]   the job's own settings        e.g. [snow] mount_cm = 200

Every key is declared once in SCHEMA with its type, default and a Japanese + English
comment. The checks and the example file that `machikit pi install` writes both come
from it, so they cannot drift apart. A problem is ONE line, Japanese first, naming the
file and the key: a staff member reading `journalctl` should know what to fix.
"""

import logging
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from machikit import contract
from machikit.texts import say

CONFIG_DIR = Path("/etc/machikit")
STATE_DIR = Path("/var/lib/machikit")  # systemd's StateDirectory=machikit
log = logging.getLogger(__name__)
REQUIRED = None  # default of a key the user must fill in (TOML itself has no null)

# type -> (Japanese, English) for "write it as ..."
KINDS: dict[type, tuple[str, str]] = {
    str: ("文字列（\"…\"）", 'text ("…")'),
    int: ("整数", "a whole number"),
    float: ("数値", "a number"),
    bool: ("true か false", "true or false"),
}


@dataclass(frozen=True)
class Key:
    kind: type
    default: Any
    ja: str
    en: str
    choices: tuple = ()


def _outbox(job: str) -> Key:
    return Key(str, f"{STATE_DIR}/{job}-outbox.sqlite3",
               "送れなかったメッセージをためるファイル", "where unsent messages wait")


PIN_FACTORY = Key(str, "", "gpiozero のピン方式（空 = 自動。Pi 5 は lgpio）",
                  "gpiozero pin factory (empty = automatic; lgpio on a Pi 5)")

COMMON: dict[str, dict[str, Key]] = {
    "device": {
        "town": Key(str, REQUIRED, "町の名前（英小文字・数字・-、例 kitamachi）",
                    "town name (a-z, 0-9, -; e.g. kitamachi)"),
        "name": Key(str, REQUIRED, "この機器の名前（例 printer-1）", "this device's name"),
        "user": Key(str, REQUIRED, "ブローカーのユーザー名（町.機器名、例 muroran.bus-01）",
                    "broker user name (town.device, e.g. muroran.bus-01)"),
        "password": Key(str, REQUIRED, "ブローカーのパスワード（このファイルは 0600 に）",
                        "broker password (keep this file mode 0600)"),
    },
    "broker": {
        "host": Key(str, REQUIRED, "MQTT ブローカーのホスト名", "MQTT broker host"),
        "port": Key(int, 8883, "ポート（TLS は 8883）", "port (8883 with TLS)"),
        "tls": Key(bool, True, "暗号化する", "use TLS"),
        "cafile": Key(str, "", "CA 証明書（空 = OS の証明書）", "CA file (empty = the system's)"),
    },
}

JOBS: dict[str, dict[str, Key]] = {
    "printer": {
        "sensor": Key(str, "ldr", "センサー: ldr（LDR+コンデンサ）か tcrt5000（反射型）",
                      "sensor: ldr (LDR + capacitor) or tcrt5000 (reflective)",
                      ("ldr", "tcrt5000")),
        "sensor_pin": Key(int, 4, "センサーの GPIO 番号", "sensor GPIO number"),
        "active_low": Key(bool, True, "tcrt5000: 紙を見ると LOW", "tcrt5000: LOW = paper seen"),
        "buzzer": Key(str, "passive", "ブザー: passive（PWM で鳴らす）か active（自分で鳴る）",
                      "buzzer: passive (PWM tone) or active (own tone)", ("passive", "active")),
        "buzzer_pin": Key(int, 18, "ブザーの GPIO 番号", "buzzer GPIO number"),
        "tone_hz": Key(int, 2700, "passive: 音の高さ Hz", "passive: tone in Hz"),
        "button_pin": Key(int, 27, "止めるボタンの GPIO 番号（0 = なし）",
                          "silence button GPIO (0 = none)"),
        "alarm_after_s": Key(float, 30.0, "紙が何秒残ったら鳴らすか",
                             "beep after paper lay this long"),
        "on_threshold": Key(int, 8000, "ldr: 紙ありと見なす変化 (0..65535)",
                            "ldr: change meaning paper (0..65535)"),
        "off_threshold": Key(int, 4000, "ldr: 紙なしに戻る変化", "ldr: change meaning empty again"),
        "debounce_ms": Key(int, 1000, "この時間続いた変化だけ数える",
                           "a change must last this long"),
        "outbox": _outbox("printer"),
        "pin_factory": PIN_FACTORY,
    },
    "snow": {
        "trigger_pin": Key(int, 23, "超音波センサー TRIG の GPIO", "ultrasonic TRIG GPIO"),
        "echo_pin": Key(int, 24, "ECHO の GPIO（5V は分圧して）", "ECHO GPIO (divide 5 V down)"),
        "model": Key(str, "jsn-sr04t", "センサーの型", "sensor model", ("jsn-sr04t", "hc-sr04")),
        "max_distance_m": Key(float, 5.0, "測る最大距離 m", "longest distance measured, m"),
        "mount_cm": Key(float, 200.0, "地面からセンサーまでの高さ cm（校正で上書き）",
                        "sensor height above bare ground, cm (calibration overrides)"),
        "pings": Key(int, 5, "1 回の測定のパルス数（中央値を使う）",
                     "pings per measurement (median)"),
        "interval_s": Key(int, 60, "測定の間隔 秒", "seconds between measurements"),
        "w1_dir": Key(str, "/sys/bus/w1/devices", "1-Wire の場所", "1-Wire sysfs folder"),
        "thermometer": Key(str, "", "DS18B20 の ID（28-…、空 = 最初の 1 つ）",
                           "DS18B20 id (28-…; empty = the first one)"),
        "state": Key(str, f"{STATE_DIR}/snow-state.json", "校正結果の保存先",
                     "where the calibration is kept"),
        "outbox": _outbox("snow"),
        "pin_factory": PIN_FACTORY,
    },
    "gps": {
        "port": Key(str, "/dev/ttyACM0", "GPS のシリアルポート（USB は ttyACM0、GPIO は serial0）",
                    "GPS serial port (USB: ttyACM0; GPIO UART: serial0)"),
        "baud": Key(int, 9600, "通信速度", "baud rate"),
        "moving_s": Key(float, 5.0, "走行中に送る間隔 秒", "seconds between sends, moving"),
        "parked_s": Key(float, 60.0, "停車中に送る間隔 秒", "seconds between sends, parked"),
        "turn_deg": Key(float, 30.0, "この角度曲がったらすぐ送る", "send at once after this turn"),
        "outbox": _outbox("gps"),
    },
}


class ConfigError(Exception):
    """One bilingual line saying which file and key to fix (str(error) is that line)."""


class Section(dict):
    """A checked section: section["port"] or section.port."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass
class JobConfig:
    job: str
    path: Path
    device: dict[str, Any] = field(default_factory=dict)
    broker: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)  # the [<job>] section

    def __getattr__(self, name: str) -> Any:
        if name == self.__dict__.get("job"):  # cfg.gps, cfg.snow: the job's own section
            return self.settings
        raise AttributeError(name)


def config_path(job: str, root: Path | None = None) -> Path:
    base = Path(root) / CONFIG_DIR.relative_to("/") if root else CONFIG_DIR
    return base / f"{job}.toml"


def schema(job: str) -> dict[str, dict[str, Key]]:
    if job not in JOBS:
        raise ConfigError(say("pi_unknown_job", job=job, jobs=", ".join(JOBS)))
    return {**COMMON, job: JOBS[job]}


def load(job: str, path: Path | None = None) -> JobConfig:
    """Read and check one job's file; raises ConfigError with one line."""
    sections = schema(job)
    path = Path(path) if path else config_path(job)
    data = _read(path, job)
    for name, value in data.items():
        if not isinstance(value, dict) or name not in sections:
            raise ConfigError(say("pi_config_unknown_section", path=path, section=name,
                                  sections=", ".join(sections)))
    found = {name: _section(path, name, keys, data.get(name, {}))
             for name, keys in sections.items()}
    return JobConfig(job, path, found["device"], found["broker"], found[job])


def _read(path: Path, job: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(say("pi_config_missing", path=path, job=job)) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(say("config_unreadable", path=path, detail=error)) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(say("pi_config_syntax", path=path, detail=error)) from None


def _section(path: Path, name: str, keys: dict[str, Key], given: dict) -> dict[str, Any]:
    for key in given:
        if key not in keys:  # a typo would otherwise be silently ignored
            raise ConfigError(say("pi_config_unknown_key", path=path, section=name, item=key))
    return Section({key: _value(path, name, key, spec, given.get(key))
                    for key, spec in keys.items()})


def _value(path: Path, section: str, key: str, spec: Key, value: Any) -> Any:
    where = {"path": path, "section": section, "item": key}
    if value is None:
        if spec.default is REQUIRED:
            raise ConfigError(say("pi_config_missing_key", **where))
        return spec.default
    if spec.kind is float and type(value) is int:
        value = float(value)  # "mount_cm = 200" is a number too
    if type(value) is not spec.kind:  # type(): a bool is not an int here
        ja, en = KINDS[spec.kind]
        raise ConfigError(say("pi_config_wrong_type", kind_ja=ja, kind_en=en, got=repr(value),
                              **where))
    if spec.default is REQUIRED and value == "":
        raise ConfigError(say("pi_config_empty_key", **where))
    if spec.choices and value not in spec.choices:
        raise ConfigError(say("pi_config_bad_value", got=repr(value),
                              allowed=" / ".join(spec.choices), **where))
    if key in ("town", "name") and not contract.is_device_name(value):
        raise ConfigError(say("pi_config_bad_value", got=repr(value), allowed="a-z 0-9 - _",
                              **where))
    return value


def example(job: str) -> str:
    """The commented example file `machikit pi install <job>` writes when none exists."""
    lines = [f"# machikit {job} — 設定ファイル / config file",
             "# 空欄（\"\"）を埋めてから起動してください / fill in the empty values, then start",
             "# sudo systemctl restart machikit-" + job]
    for name, keys in schema(job).items():
        lines += ["", f"[{name}]"]
        for key, spec in keys.items():
            lines.append(f"# {spec.ja} / {spec.en}")
            lines.append(f"{key} = {_toml(spec)}")
    return "\n".join(lines) + "\n"


def _toml(spec: Key) -> str:
    value = "" if spec.default is REQUIRED else spec.default
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)
