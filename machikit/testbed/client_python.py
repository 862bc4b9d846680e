"""The client-side tests under the test bed root's own Python 3.13 (Debian 13).

Staff laptops run Python 3.11, 3.12 or 3.13; CI and the dev venv run 3.11. The
Debian 13 root the servers come from already has 3.13, so the client set (CLI,
flashing, workshop, Pi jobs, contract, Windows code paths) runs there too:
`machikit dev py313` by hand, tests/machikit/test_client_python.py in every CI run.

How (as root):
- `unshare --mount --propagation private`: every mount below lives in a private
  mount namespace and disappears with its last process, even after kill -9. Nothing
  is ever mounted on the host, and the servers (same root, host namespace) see none of it.
- The checkout is bound read-only at /mnt/machikit (not /srv/machikit: that is where
  the servers keep their data). Others edit and test in the same checkout at the same
  time, so a root-owned run must not write into it; PYTHONDONTWRITEBYTECODE=1 and
  `-p no:cacheprovider` keep Python and pytest from trying. It also proves the client
  tests write nothing into the source tree.
- tmpfs on /tmp and /run: pytest's tmp_path, HOME, pip's download cache and the LAN
  tests' network namespace names vanish with the run.
- proc, and a private devpts instance bound over /dev/ptmx: the flashing tests talk to
  a simulated board over a pseudo-terminal.
- The host's resolv.conf and CA bundle, read-only: pip (first run only) must reach PyPI
  wherever the host's own pip does, including behind a TLS-inspecting proxy whose CA is
  in the host's bundle only.
- Same network namespace: the servers' loopback ports work unchanged.
Then chroot, `quickstart.py install dev` into /opt/machikit-py313 inside the root (the
CI install, cached by quickstart's own stamp), print the version, run pytest.
"""

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from machikit.testbed.layout import Layout, current, read_env
from machikit.testbed.system import ROOT_ENV, TestbedError
from machikit.texts import say

CHECKOUT = Path(__file__).resolve().parents[2]
SOURCE = "/mnt/machikit"  # the checkout, seen from inside the root
VENV = "/opt/machikit-py313"  # inside the root: rebuilt with the root, never on the host
# The test bed seen from inside (tmpfs): env.json for testbed.load_env(), and root -> /
# (the root we are in), so tests that start a second Mosquitto from the root find it.
# api.inside_root() then keeps is_controllable() false.
INNER_TESTBED = "/tmp/machikit-testbed"
MICROPYTHON = "/usr/bin/micropython"  # the root's own, no wrapper needed inside
# What a staff laptop or a Pi runs: CLI and contract, flashing, workshop, Pi jobs, and the
# Windows code paths (tested on Linux; Windows users often install the newest Python).
CLIENT_TESTS = ("tests/machikit", "tests/flash", "tests/workshop", "tests/pi", "tests/windows")
VERSION_LINE = "machikit client python:"  # printed before pytest starts; the test reads it
# Passed through from the caller: CI makes skips fail inside too; pip may need a proxy.
PASSED_THROUGH = ("CI", "http_proxy", "https_proxy", "no_proxy",
                  "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")

# Tests of the client set that cannot run inside, always deselected: they would skip, and
# with CI=true a skip fails. Each still runs in the host's normal pytest run.
DESELECTED = (
    # Starts this very run: inside, it would start another one.
    "tests/machikit/test_client_python.py",
    # The rest skip unless testbed.is_controllable(), which is false inside on purpose:
    # stopping or restarting the shared servers belongs to the host (its lock, and every
    # other test using them at that moment).
    # Restart or stop the shared Mosquitto (the last two in the middle of a drive).
    "tests/machikit/test_testbed.py::test_mosquitto_restart_keeps_a_queued_qos1_message",
    "tests/pi/test_tracker_e2e.py::test_broker_outage_mid_drive_loses_nothing",
    "tests/pi/test_tracker_e2e.py::test_power_cut_mid_drive_keeps_the_queue",
    # Guarded the same way (needs_control / is_controllable) as checks of the servers'
    # own installation: TimescaleDB through the root's psql, Mosquitto's password file.
    "tests/machikit/test_testbed.py::test_timescaledb_is_there_for_the_test_role",
    "tests/machikit/test_credentials.py::test_reads_what_mosquitto_passwd_wrote",
    # Its "phone" is Debian's chromium on the host (the browser tests' tool, not in the
    # root: hundreds of MB), and it saves a screenshot into the checkout (read-only here).
    # The same LAN's serve and firewall tests do run inside.
    "tests/workshop/test_lan.py::test_boards_and_a_phone_on_the_lan_reach_the_workshop_laptop",
)

# Runs on the host, already in the private mount namespace.
# $1 root, $2 checkout, $3 its path inside, $4 inner test bed dir, $5 its env.json,
# $6 the script to run in the chroot; the rest goes to that script.
NAMESPACE_SCRIPT = r"""
set -eu
root=$1 checkout=$2 source=$3 bed=$4 env_json=$5 inner=$6
shift 6
# The root as a mount point of its own: `ip netns exec` (the workshop LAN tests) remounts
# "/" as a slave, which fails on a plain directory.
mount --bind "$root" "$root"
mkdir -p "$root$source"
mount --bind -o ro "$checkout" "$root$source"
mount -t proc proc "$root/proc"
# Pseudo-terminals of our own (the simulated boards), usable by everyone as on a laptop.
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$root/dev/pts"
mount --bind "$root/dev/pts/ptmx" "$root/dev/ptmx"
# Scratch that vanishes with the run: tmp_path, HOME, pip's cache; `ip netns` names.
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/tmp"
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$root/run"
for file in /etc/resolv.conf /etc/ssl/certs/ca-certificates.crt; do
    # not onto a symlink: mount would follow it to a host path
    if [ -f "$file" ] && [ -f "$root$file" ] && [ ! -L "$root$file" ]; then
        mount --bind -o ro "$file" "$root$file"
    fi
done
mkdir -p "$root$bed"
printf '%s\n' "$env_json" > "$root$bed/env.json"
ln -s / "$root$bed/root"
exec chroot "$root" /bin/sh -c "$inner" sh "$@"
"""

# Runs in the chroot. $1 venv, $2 checkout, $3 version line; the rest: pytest arguments.
# flock: two runs at once (two shells, two CI jobs) must not install into the venv together.
CHROOT_SCRIPT = r"""
set -eu
venv=$1 source=$2 version_line=$3
shift 3
cd "$source"
MACHIKIT_VENV="$venv" flock "$venv.lock" python3 quickstart.py install dev
"$venv/bin/python" -c 'import sys; print(sys.argv[1], sys.version, flush=True)' "$version_line"
exec "$venv/bin/python" -m pytest -p no:cacheprovider "$@"
"""


def run_client_tests(
    pytest_args: Sequence[str] = (), layout: Layout | None = None,
    capture: bool = False, timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run pytest (default: the client set) under the root's Python; root only.

    capture: output in .stdout (stderr merged) instead of on the terminal.
    On timeout the whole run is killed and returncode is -SIGKILL."""
    layout = layout or current()
    host_env = _check(layout)
    inner = _inner_services(host_env)
    argv = [
        "unshare", "--mount", "--propagation", "private",
        "sh", "-c", NAMESPACE_SCRIPT, "sh",
        str(layout.root), str(CHECKOUT), SOURCE, INNER_TESTBED, json.dumps(inner, indent=2),
        CHROOT_SCRIPT, VENV, SOURCE, VERSION_LINE,
        *pytest_arguments(pytest_args),
    ]
    return _run(argv, _environment(inner), capture, timeout)


def pytest_arguments(given: Sequence[str]) -> list[str]:
    """The deselections always, the given arguments, and the client set unless they name
    tests themselves (`-x` alone must not widen the run to the whole suite)."""
    deselect = [arg for node in DESELECTED for arg in ("--deselect", node)]
    return [*deselect, *given, *([] if names_tests(given) else CLIENT_TESTS)]


def names_tests(args: Sequence[str]) -> bool:
    """True if an argument is a test path or node id of the checkout (tests/pi, a::b)."""
    return any(not arg.startswith("-") and (CHECKOUT / arg.split("::")[0]).exists()
               for arg in args)


def _check(layout: Layout) -> dict[str, str]:
    if os.geteuid() != 0:  # unshare, mount and chroot
        raise TestbedError(say("needs_root"))
    if not (CHECKOUT / "tests").is_dir():
        raise TestbedError(say("py313_no_checkout", path=CHECKOUT))
    host_env = read_env(layout)
    if host_env is None:
        raise TestbedError(say("testbed_absent", path=layout.base))
    if not layout.host("usr/bin/python3").exists():
        raise TestbedError(say("py313_no_python", path=layout.root))
    return host_env


def _inner_services(host_env: dict[str, str]) -> dict[str, str]:
    """The test bed as seen from inside: same URLs (same network namespace), the root's
    own MicroPython, no host paths (MACHIKIT_CHROMIUM: the browser tests are not in the
    client set)."""
    found = {key: value for key, value in host_env.items() if key.startswith("MACHIKIT_TEST_")}
    return {**found, "MACHIKIT_MICROPYTHON": MICROPYTHON, "MACHIKIT_TESTBED_DIR": INNER_TESTBED}


def _environment(inner: dict[str, str]) -> dict[str, str]:
    # ROOT_ENV: none of the caller's PATH, PYTHONPATH, VIRTUAL_ENV or LD_* gets in.
    env = {**ROOT_ENV, "HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1", **inner}
    env.update({name: os.environ[name] for name in PASSED_THROUGH if name in os.environ})
    return env


def _run(
    argv: list[str], env: dict[str, str], capture: bool, timeout: float | None,
) -> subprocess.CompletedProcess[str]:
    # A session of its own, so a timeout or Ctrl-C stops pytest's children too (the
    # namespace and its mounts go away with the last of them).
    with subprocess.Popen(
        argv, env=env, cwd="/", stdin=subprocess.DEVNULL, start_new_session=True,
        text=True, encoding="utf-8", errors="replace",  # LANG=C.UTF-8 inside
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.STDOUT if capture else None,
    ) as proc:
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            output, _ = proc.communicate()
        except KeyboardInterrupt:
            _signal_group(proc, signal.SIGINT)  # pytest prints its summary and stops
            output, _ = proc.communicate()
    return subprocess.CompletedProcess(argv, proc.returncode, output or "")


def _signal_group(proc: "subprocess.Popen[str]", signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(proc.pid, signum)
