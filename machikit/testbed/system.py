"""Small process helpers: run a command inside the root, find and stop daemons.

Finding (Debian 12 host, Debian 13 root): PostgreSQL 17 (JIT included),
TimescaleDB, Mosquitto and apt/dpkg all work under plain chroot without /proc,
/sys or a bound /dev (debootstrap's own device nodes suffice). So nothing is
ever mounted: no mount can leak, and it works where mounting is forbidden.
"""

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

# A clean environment: the caller's PG*, LANG or LD_* must not leak into the root.
ROOT_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "HOME": "/",
}


class TestbedError(RuntimeError):
    """A step failed; the message says which, the detail carries log lines."""

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


def ids(root: Path, user: str) -> tuple[int, int]:
    """uid/gid of a user *of the root* (the host may not have it, or number it differently)."""
    for line in (root / "etc/passwd").read_text(encoding="utf-8").splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2]), int(fields[3])
    raise TestbedError(f"user {user} missing in {root}")


def chroot_cmd(root: Path, argv: list[str], user: str | None = None) -> list[str]:
    cmd = ["chroot"]
    if user:
        uid, gid = ids(root, user)
        cmd.append(f"--userspec={uid}:{gid}")
    return [*cmd, str(root), *argv]


def run_in_root(
    root: Path, argv: list[str], user: str | None = None, stdin: str | None = None,
    timeout: float = 120, env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        chroot_cmd(root, argv, user), input=stdin, capture_output=True, text=True, encoding="utf-8",
        env={**ROOT_ENV, **(env or {})}, cwd="/", timeout=timeout, check=False,
    )


def chown(root: Path, path: Path, user: str, mode: int) -> None:
    uid, gid = ids(root, user)
    os.chown(path, uid, gid)
    path.chmod(mode)


def _state(pid: int) -> str | None:
    """Kernel state letter, None if the pid is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def alive(pid: int) -> bool:
    # A zombie has finished: PID 1 in containers can take a second to reap it,
    # and waiting for that would make every restart a second slower.
    return _state(pid) not in (None, "Z")


def runs_in(pid: int, root: Path, name: str) -> bool:
    """True if pid is a live `name` process; as root also check it runs in *our* root,
    so a recycled pid or another test bed's server is never signalled."""
    if not alive(pid):
        return False
    try:
        if Path(f"/proc/{pid}/comm").read_text(encoding="utf-8").strip() != name:
            return False
        return os.readlink(f"/proc/{pid}/root") == str(root.resolve())
    except PermissionError:
        return True  # non-root cannot see other users' roots; the name matched
    except FileNotFoundError:
        return False


def processes_in(root: Path, name: str) -> list[int]:
    """Live `name` processes running in our root (root only: needs /proc/PID/root)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and runs_in(int(entry.name), root, name):
            found.append(int(entry.name))
    return found


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def terminate(pid: int, timeout: float) -> None:
    """SIGTERM (graceful: Mosquitto saves its DB), SIGKILL only as a last resort."""
    try:
        os.kill(pid, signal.SIGTERM)
        if not wait_gone(pid, timeout):
            os.kill(pid, signal.SIGKILL)
            wait_gone(pid, 5)
    except ProcessLookupError:
        pass


def tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"({path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def wait_until(check: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True

