"""The install a new user gets, from nothing: a brand-new venv made with the interpreter's
own bundled pip (never upgraded), no pip cache, each lock installed exactly the way
quickstart.py installs it (`quickstart.py install LOCK` runs the same function as `demo`
and `test`). Then: the lock was complete (pip check, and every extra it claims is
satisfied), the venv holds exactly the locked versions (nothing newer slipped in), and
every command the CLI lists either works or says in one line what to install.

This is the test that would have caught a venv's pip 23.2.1 re-resolving amqtt's
`pwdlib[argon2]` to a release newer than the lock.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from machikit.cli import COMMANDS
from tests.conftest import FIXTURES, REPO

pytestmark = pytest.mark.slow

# lock -> the extras it must satisfy (requirements/README.md)
LOCK_EXTRAS = {
    "collector": ("collector", "pi", "workshop", "grafana"),
    "pi": ("pi",),
    "dev": ("collector", "pi", "workshop", "grafana", "dev"),
}
# Checks the venv's own metadata from inside it (pip's vendored packaging: no extra package).
EXTRAS_CHECK = """
import sys
from importlib import metadata
from pip._vendor.packaging.requirements import Requirement
missing = []
for text in metadata.requires("machikit") or []:
    req = Requirement(text)
    if req.marker and not any(req.marker.evaluate({"extra": e}) for e in sys.argv[1:]):
        continue
    try:
        version = metadata.version(req.name)
    except metadata.PackageNotFoundError:
        missing.append(text)
        continue
    if not req.specifier.contains(version, prereleases=True):
        missing.append(f"{text} (installed {version})")
print("\\n".join(missing))
sys.exit(1 if missing else 0)
"""
PINNED_FOR_HERE = """
import json, sys
from pip._vendor.packaging.markers import Marker
pins = {}
for name, version, marker in json.load(sys.stdin):
    if not marker or Marker(marker).evaluate():
        pins[name] = version
print(json.dumps(pins))
"""


def other_pythons() -> list[str]:
    """Other supported interpreters this machine has (staff laptops run 3.11 to 3.13)."""
    found = []
    for minor in ("3.12", "3.13"):
        pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
        candidates = [shutil.which(f"python{minor}"),
                      *sorted(str(p) for p in pyenv.glob(f"{minor}.*/bin/python{minor}"))]
        for path in candidates:
            if path and _runs(path, minor):
                found.append(path)
                break
    return found


def _runs(python: str, minor: str) -> bool:
    result = subprocess.run([python, "-c", "import sys, venv, ensurepip; print(sys.version)"],
                            capture_output=True, text=True)
    return result.returncode == 0 and result.stdout.startswith(minor)


CASES = [pytest.param(sys.executable, lock, id=f"{lock}-{sys.version_info[0]}."
                      f"{sys.version_info[1]}") for lock in LOCK_EXTRAS]
CASES += [pytest.param(python, "collector", id=f"collector-{Path(python).name}")
          for python in other_pythons()]


def bin_of(venv: Path, name: str) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin") / name


def quickstart_install(python: str, lock: str, venv: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items()
           if key not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env.update(MACHIKIT_VENV=str(venv), PIP_NO_CACHE_DIR="1")
    return subprocess.run([python, str(REPO / "quickstart.py"), "install", lock], env=env,
                          capture_output=True, text=True, timeout=1200)


def bundled_pip(python: str) -> str:
    return subprocess.run([python, "-c", "import ensurepip; print(ensurepip.version())"],
                          capture_output=True, text=True, check=True).stdout.strip()


def lock_pins(lock: str, python: Path) -> dict[str, str]:
    """name -> version of every line of the lock whose marker holds for `python`."""
    entries = []
    text = (REPO / "requirements" / f"{lock}.lock").read_text(encoding="utf-8")
    for line in text.splitlines():
        found = re.match(r"^([A-Za-z0-9._-]+)==([^ ;\\]+)\s*(?:;\s*(.*?))?\s*\\?$", line)
        if found:
            entries.append([normalise(found[1]), found[2], found[3]])
    out = subprocess.run([str(python), "-c", PINNED_FOR_HERE], input=json.dumps(entries),
                         capture_output=True, text=True, check=True).stdout
    return dict(json.loads(out))


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed(python: Path) -> dict[str, str]:
    out = subprocess.run([str(python), "-m", "pip", "list", "--format=json",
                          "--disable-pip-version-check"], capture_output=True, text=True,
                         check=True).stdout
    return {normalise(row["name"]): row["version"] for row in json.loads(out)}


@pytest.mark.parametrize(("python", "lock"), CASES)
def test_fresh_venv_with_bundled_pip_installs_the_lock(python: str, lock: str,
                                                       tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    result = quickstart_install(python, lock, venv)
    assert result.returncode == 0, result.stderr[-4000:]
    venv_python = bin_of(venv, "python")

    pip = subprocess.run([str(venv_python), "-m", "pip", "--version"], capture_output=True,
                         text=True, check=True).stdout
    assert pip.split()[1] == bundled_pip(python), "the test must use the never-upgraded pip"

    check = subprocess.run([str(venv_python), "-m", "pip", "check"], capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stdout
    extras = subprocess.run([str(venv_python), "-c", EXTRAS_CHECK, *LOCK_EXTRAS[lock]],
                            capture_output=True, text=True)
    assert extras.returncode == 0, f"{lock}.lock does not satisfy its extras:\n{extras.stdout}"

    have, want = installed(venv_python), lock_pins(lock, venv_python)
    have.pop("machikit")
    have.pop("pip")
    assert have == want, "the venv must hold exactly the lock's versions"
    if lock == "pi":  # a Pi has no collector: one line says what would bring it
        serve = subprocess.run([str(bin_of(venv, "machikit")), "serve"], capture_output=True,
                               text=True, timeout=60)
        assert serve.returncode == 2
        assert serve.stderr.strip().endswith("python3 quickstart.py install collector")
        assert len(serve.stderr.strip().splitlines()) == 1, serve.stderr


def test_build_backend_pin_matches_pyproject() -> None:
    """build.in is what quickstart builds the project with (no build isolation)."""
    import tomllib

    wanted = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    lines = (REPO / "requirements" / "build.in").read_text(encoding="utf-8").splitlines()
    assert [line for line in lines if line and not line.startswith("#")] == \
        wanted["build-system"]["requires"]


@pytest.fixture(scope="module")
def laptop_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The venv `python3 quickstart.py demo` makes (collector.lock), built from nothing."""
    venv = tmp_path_factory.mktemp("laptop") / "venv"
    result = quickstart_install(sys.executable, "collector", venv)
    assert result.returncode == 0, result.stderr[-4000:]
    return venv


def machikit(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bin_of(venv, "machikit")), *args], capture_output=True,
                          text=True, timeout=120, cwd=venv.parent)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_listed_command_works_or_says_what_to_install(laptop_venv: Path,
                                                            command: str) -> None:
    result = machikit(laptop_venv, command, "--help")
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stderr
    assert f"usage: machikit {command}" in result.stdout


def test_gps_check_runs_in_the_demo_environment(laptop_venv: Path) -> None:
    """Staff check a receiver's log on the laptop before the town buys twenty."""
    log = FIXTURES / "nmea" / "gpsd" / "neo-m8n.log"
    result = machikit(laptop_venv, "pi", "gps-check", str(log))
    assert result.returncode == 0, result.stderr
    assert "neo-m8n.log" in result.stdout
