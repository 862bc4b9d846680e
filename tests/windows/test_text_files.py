"""Text files are read and written as UTF-8 with "\\n" line ends on every OS.

On Windows, `open()`, `Path.read_text()` and `Path.write_text()` without `encoding=` use the
locale's code page (cp932 on a Japanese laptop), and a text-mode write turns "\\n" into
"\\r\\n". Both broke real files: a Japanese Wi-Fi SSID in the board's config.json would reach
MicroPython (which reads UTF-8) as cp932 bytes, and a Mosquitto passwd/acl written on Windows
would carry "\\r" at every line end. Two guards, so the rule cannot quietly come back:

1. every call in machikit/, collector/ and pi/ is checked in the source (AST): a text-mode
   read/write needs encoding=, a text-mode write also newline=, a subprocess with text=True
   needs encoding= (a child's output is not necessarily in the locale's code page either);
2. the commands a laptop runs are run with `-X warn_default_encoding -W error::EncodingWarning`
   (PEP 597): any read or write that falls back to the locale encoding then raises, in our
   code or in a library on the path.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import FIXTURES, REPO

PRODUCT = ("machikit", "collector", "pi")
SCRIPTS = ("quickstart.py",)  # run by staff on Windows before anything is installed

# Calls the check cannot judge from the source and that are right as they are, each with its
# reason: (file, line text fragment) -> reason. Keep this short; prefer fixing the call.
ALLOWED: dict[tuple[str, str], str] = {
    # (none yet: every call in the product code names its encoding and newline)
}

# Modules whose .open() is not a text-file open (os.open takes flags, webbrowser opens a URL).
NOT_FILE_OPEN = {"os", "webbrowser", "tarfile", "zipfile", "gzip", "bz2", "lzma", "wave"}
SUBPROCESS_FUNCS = {"run", "Popen", "check_output", "call", "check_call"}


@dataclass(frozen=True)
class Call:
    """Where each argument sits for one kind of call (None: no positional slot)."""

    mode: int | None
    encoding: int | None
    newline: int | None
    always_text: bool = False
    always_write: bool = False


# builtin open(file, mode, buffering, encoding, errors, newline)
OPEN = Call(mode=1, encoding=3, newline=5)
# Path.open(mode, buffering, encoding, errors, newline)
PATH_OPEN = Call(mode=0, encoding=2, newline=4)
READ_TEXT = Call(mode=None, encoding=0, newline=None, always_text=True)
# Path.write_text(data, encoding, errors, newline)
WRITE_TEXT = Call(mode=None, encoding=1, newline=3, always_text=True, always_write=True)


def _argument(node: ast.Call, position: int | None, keyword: str) -> ast.expr | None:
    for kw in node.keywords:
        if kw.arg == keyword:
            return kw.value
    if position is not None and position < len(node.args):
        return node.args[position]
    return None


def _given(value: ast.expr | None) -> bool:
    return value is not None and not (isinstance(value, ast.Constant) and value.value is None)


def _kind(node: ast.Call) -> Call | None:
    func = node.func
    if isinstance(func, ast.Name) and func.id == "open":
        return OPEN
    if not isinstance(func, ast.Attribute):
        return None
    owner = func.value.id if isinstance(func.value, ast.Name) else None
    if func.attr == "read_text":
        return READ_TEXT
    if func.attr == "write_text":
        return WRITE_TEXT
    if func.attr == "fdopen" and owner == "os":
        return OPEN
    if func.attr == "open" and owner == "io":
        return OPEN
    if func.attr == "open" and owner not in NOT_FILE_OPEN:
        return PATH_OPEN  # pathlib.Path.open (self.log.open(...), Path(x).open(...))
    return None


def problems_in(source: str, name: str,
                exempt: Iterable[tuple[str, str]] = ALLOWED) -> list[str]:
    """Every text read/write in this module that leaves the encoding or newline to the OS."""
    found = []
    lines = source.splitlines()
    for node in ast.walk(ast.parse(source, name)):
        if not isinstance(node, ast.Call):
            continue
        line = lines[node.lineno - 1].strip()
        if any(file == name and fragment in line for file, fragment in exempt):
            continue
        found += [(node.lineno, f"{name}:{node.lineno}: {line}  <- {issue}")
                  for issue in _issues(node)]
    return [text for _, text in sorted(found)]


def _issues(node: ast.Call) -> list[str]:
    func = node.func
    if isinstance(func, ast.Attribute) and func.attr in SUBPROCESS_FUNCS and (
        isinstance(func.value, ast.Name) and func.value.id == "subprocess"
    ):
        text = _argument(node, None, "text") or _argument(node, None, "universal_newlines")
        if _given(text) and not _given(_argument(node, None, "encoding")):
            return ["subprocess text=True without encoding="]
        return []
    kind = _kind(node)
    if kind is None:
        return []
    mode_node = None if kind.mode is None else _argument(node, kind.mode, "mode")
    if kind.always_text:
        text, write = True, kind.always_write
    elif mode_node is None:
        text, write = True, False  # the default mode, "r"
    elif isinstance(mode_node, ast.Constant) and isinstance(mode_node.value, str):
        text = "b" not in mode_node.value
        write = any(flag in mode_node.value for flag in "wax+")
    else:
        return ["mode is not a literal: cannot tell text from binary"]
    issues = []
    if text and not _given(_argument(node, kind.encoding, "encoding")):
        issues.append("text read/write without encoding=")
    if text and write and not _given(_argument(node, kind.newline, "newline")):
        issues.append("text-mode write without newline=")
    return issues


def product_files() -> list[Path]:
    packages = [path for package in PRODUCT for path in (REPO / package).rglob("*.py")]
    return sorted([*packages, *(REPO / script for script in SCRIPTS)])


def test_the_check_finds_what_it_must() -> None:
    """The checker itself, on calls written both ways (so a broken checker cannot pass)."""
    bad = "\n".join([
        "from pathlib import Path",
        "import os, subprocess",
        "Path('a').read_text()",
        "Path('a').write_text('x', encoding='utf-8')",
        "Path('a').write_text('x', 'utf-8')",
        "open('a')",
        "open('a', 'w', encoding='utf-8')",
        "self.log.open('a')",
        "os.fdopen(3, 'w', encoding='utf-8')",
        "open('a', mode)",
        "subprocess.run(['x'], text=True)",
    ])
    good = "\n".join([
        "from pathlib import Path",
        "import os, subprocess, webbrowser",
        "Path('a').read_text(encoding='utf-8')",
        "Path('a').read_text('utf-8')",
        "Path('a').write_text('x', encoding='utf-8', newline='\\n')",
        "Path('a').write_text('x', 'utf-8', None, '\\n')",
        "open('a', 'rb')",
        "open('a', encoding='utf-8')",
        "open('a', 'w', encoding='utf-8', newline='\\n')",
        "Path('a').open('rb')",
        "os.fdopen(3, 'w', encoding='utf-8', newline='\\n')",
        "os.open('a', os.O_RDONLY)",
        "webbrowser.open('http://x')",
        "subprocess.run(['x'], text=True, encoding='utf-8')",
        "subprocess.run(['x'], capture_output=True)",
    ])
    found = problems_in(bad, "bad.py")
    assert [line.split(":")[1] for line in found] == [
        "3", "4", "5", "6", "7", "8", "8", "9", "10", "11"], found
    assert problems_in(good, "good.py") == []


def test_every_text_file_names_its_encoding_and_newline() -> None:
    files = product_files()
    assert len(files) > 50  # the walk found the packages
    found = []
    for path in files:
        found += problems_in(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)),
                             exempt=list(ALLOWED))
    assert found == [], "\n" + "\n".join(found)


# --- the commands, as on Windows, with every locale-encoding fallback an error --------------

# PEP 597: a read or write that falls back to the locale encoding raises EncodingWarning.
STRICT = [sys.executable, "-X", "warn_default_encoding", "-W", "error::EncodingWarning"]
# ...and the files are written with Windows' defaults (tests/windows/wintext.py): a call that
# slipped through would write cp932 and "\r\n", which the checks on the files then see.
AS_ON_WINDOWS = [*STRICT, "-m", "tests.windows.wintext"]


def strict_env(tmp_path: Path) -> dict[str, str]:
    """A user's shell, with no test-service variables and data in a temporary folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MACHIKIT_")}
    env.update(PYTHONWARNDEFAULTENCODING="1", MACHIKIT_DATA_DIR=str(tmp_path / "data"),
               MACHIKIT_CONFIG=str(tmp_path / "absent.toml"), PYTHONPATH=str(REPO))
    return env


def machikit(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*AS_ON_WINDOWS, "machikit", *args], cwd=tmp_path,
                          env=strict_env(tmp_path), capture_output=True, timeout=120)


def ok(done: subprocess.CompletedProcess[bytes]) -> str:
    out, err = done.stdout.decode(), done.stderr.decode()
    assert "EncodingWarning" not in err and "Traceback" not in err, err
    assert done.returncode == 0, err
    return out


def utf8_lf(path: Path) -> str:
    raw = path.read_bytes()
    assert b"\r" not in raw, f"{path}: CR LF line ends"
    return raw.decode("utf-8")  # raises on cp932 bytes


def test_the_strict_run_does_catch_a_locale_fallback(tmp_path: Path) -> None:
    """Proof that the flags are in force: a bare open() fails."""
    done = subprocess.run([*STRICT, "-c", "open(__import__('sys').argv[1], 'w')",
                           str(tmp_path / "x")], capture_output=True, timeout=60)
    assert done.returncode != 0 and b"EncodingWarning" in done.stderr


def test_the_emulation_writes_as_windows_does(tmp_path: Path) -> None:
    """Proof that wintext.py works: a bare write_text gives cp932 and CR LF."""
    target = tmp_path / "x.txt"
    script = "import sys, pathlib; pathlib.Path(sys.argv[1]).write_text('役場\\n')"
    (tmp_path / "bare.py").write_text(script, encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "tests.windows.wintext", "bare", str(target)],
                          cwd=tmp_path, env={**strict_env(tmp_path),
                                             "PYTHONPATH": f"{REPO}{os.pathsep}{tmp_path}"},
                          capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    assert target.read_bytes() == "役場\r\n".encode("cp932")


def test_device_commands_write_utf8_lf_broker_files(tmp_path: Path) -> None:
    out_dir = tmp_path / "broker"
    out = ok(machikit(tmp_path, "device", "add", "muroran", "bus-01", "--kind", "bus",
                      "--public", "--service-hours", "mon-fri 06:30-21:30"))
    assert "muroran.bus-01" in out
    ok(machikit(tmp_path, "device", "add", "muroran", "snow-01", "--kind", "snow_gauge"))
    assert "bus-01" in ok(machikit(tmp_path, "device", "list"))
    ok(machikit(tmp_path, "device", "broker-files", "--out", str(out_dir)))
    # a second run reads the passwd it wrote (the service users in it are kept)
    ok(machikit(tmp_path, "device", "broker-files", "--out", str(out_dir)))
    assert "muroran.bus-01:$7$" in utf8_lf(out_dir / "passwd")
    assert "user muroran.snow-01\n" in utf8_lf(out_dir / "acl")


def test_flash_builds_the_bundle_with_no_locale_fallback(tmp_path: Path) -> None:
    """`machikit flash` builds the board's files (mpy-cross on each) before it opens the
    port: a port that is not there shows the bundle was built without a fallback."""
    port = str(tmp_path / "no-such-port")
    done = machikit(tmp_path, "flash", "--port", port, "--app", "snow", "--town", "muroran",
                    "--name", "snow-01", "--user", "muroran.snow-01", "--password", "pw",
                    "--wifi-ssid", "役場ゲスト", "--wifi-password", "x", "--broker-host",
                    "192.0.2.1")
    err = done.stderr.decode()
    assert "EncodingWarning" not in err and "Traceback" not in err, err
    assert done.returncode == 1
    assert port in done.stdout.decode()  # the bundle was built; the error names the port


def test_bundle_config_json_is_utf8_with_lf(tmp_path: Path) -> None:
    """A Japanese SSID reaches the board as UTF-8 (MicroPython's json reads nothing else),
    LF only, with Windows' defaults and the strict flags (mpy-cross's run included)."""
    script = (
        "import sys; from pathlib import Path\n"
        "from tests.windows.wintext import emulate; emulate()\n"
        "from machikit.flash.bundle import build_bundle, device_config\n"
        "config = device_config('muroran', 'snow-01', 'muroran.snow-01', 'pw', '役場ゲスト',"
        " 'パス', '192.0.2.1')\n"
        "print(len(build_bundle(Path(sys.argv[1]), 'snow', config)))\n"
    )
    done = subprocess.run([*STRICT, "-c", script, str(tmp_path / "bundle")], cwd=tmp_path,
                          env=strict_env(tmp_path), capture_output=True, timeout=120)
    assert int(ok(done)) > 5
    config = json.loads(utf8_lf(tmp_path / "bundle" / "config.json"))
    assert config["wifi"]["ssid"] == "役場ゲスト" and config["wifi"]["password"] == "パス"
    assert config["app"]["name"] == "snow"


def test_gps_check_reads_a_log_with_no_locale_fallback(tmp_path: Path) -> None:
    log = FIXTURES / "nmea" / "gpsd" / "neo-m8n.log"
    out = ok(machikit(tmp_path, "pi", "gps-check", str(log)))
    assert "neo-m8n.log" in out and "ファイル" in out


def test_grafana_export_writes_utf8_lf(tmp_path: Path) -> None:
    out_dir = tmp_path / "grafana"
    ok(machikit(tmp_path, "grafana", "export", "--out", str(out_dir)))
    boards = sorted((out_dir / "dashboards").glob("*.json"))
    assert len(boards) == 4
    for board in boards:
        assert json.loads(utf8_lf(board))["uid"] == board.stem
    assert "車両 / Fleet" in utf8_lf(out_dir / "dashboards" / "machikit-fleet.json")
    assert list((out_dir / "provisioning" / "datasources").glob("*.yaml"))


def test_workshop_files_are_utf8_lf(tmp_path: Path) -> None:
    """prepare and labels as on Windows: devices.json (read back by every later command),
    the embedded broker's files and the labels, with no locale fallback anywhere."""
    (tmp_path / "roster.csv").write_bytes("名前,アプリ\n山田 花子,snow\n".encode("cp932"))
    ok(machikit(tmp_path, "workshop", "prepare", "roster.csv", "--town", "tokamachi",
                "--wifi-ssid", "役場-AP", "--map-url", "http://192.168.10.2:8080/"))
    ok(machikit(tmp_path, "workshop", "labels", "--map-url", "http://192.168.10.3:8080/"))
    devices = utf8_lf(tmp_path / "workshop" / "devices.json")
    assert "役場-AP" in devices and "http://192.168.10.3:8080/" in devices
    assert "tokamachi.snow-01:$7$" in utf8_lf(tmp_path / "data" / "broker" / "passwd")
    assert "user tokamachi.snow-01\n" in utf8_lf(tmp_path / "data" / "broker" / "acl")
    assert (tmp_path / "workshop" / "labels.pdf").read_bytes().startswith(b"%PDF")
