"""PostgreSQL 17 + TimescaleDB from the root, on 127.0.0.1 only.

Runs as the root's `postgres` user via `chroot --userspec`; the data directory,
unix socket and log all live inside the root under /srv/machikit/postgres.
"""

import os

from machikit.testbed.layout import PG_DATABASE, PG_USER, Layout
from machikit.testbed.system import (
    TestbedError,
    chown,
    processes_in,
    run_in_root,
    runs_in,
    tail,
    wait_until,
)

BIN = "/usr/lib/postgresql/17/bin"
HOME = "/srv/machikit/postgres"
DATA = f"{HOME}/data"
RUN = f"{HOME}/run"
LOG = f"{HOME}/postgresql.log"
INCLUDE = "include_if_exists = 'machikit.conf'"


def log_path(layout: Layout) -> str:
    return str(layout.host(LOG))


def is_initialized(layout: Layout) -> bool:
    return layout.host(f"{DATA}/PG_VERSION").exists()


def initdb(layout: Layout) -> None:
    for inner, mode in ((HOME, 0o755), (RUN, 0o755)):
        layout.host(inner).mkdir(parents=True, exist_ok=True)
        chown(layout.root, layout.host(inner), "postgres", mode)
    # peer for the admin socket (root drives it with psql), SCRAM for every TCP client.
    result = run_in_root(layout.root, [
        f"{BIN}/initdb", "-D", DATA, "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8",
        "--auth-local=peer", "--auth-host=scram-sha-256", "--no-instructions",
    ], user="postgres")
    if result.returncode:
        raise TestbedError("initdb", result.stdout + result.stderr)
    conf = layout.host(f"{DATA}/postgresql.conf")
    settings = f"\n# machikit test bed settings\n{INCLUDE}\n"
    conf.write_text(conf.read_text(encoding="utf-8") + settings, encoding="utf-8", newline="\n")


def _dsm_type(layout: Layout) -> str:
    # The root's /dev/shm is a plain root-owned directory unless something mounts a
    # tmpfs there, so POSIX shared memory would fail (or hit the disk): use SysV.
    return "posix" if os.path.ismount(layout.host("/dev/shm")) else "sysv"


def config_text(layout: Layout, port: int) -> str:
    return "\n".join([
        "# Written by `machikit dev services up`; edits are overwritten.",
        "listen_addresses = '127.0.0.1'",
        f"port = {port}",
        f"unix_socket_directories = '{RUN}'",
        "shared_preload_libraries = 'timescaledb'",
        "timescaledb.telemetry_level = off",
        "fsync = on  # tests check durability: never trade it for speed here",
        f"dynamic_shared_memory_type = {_dsm_type(layout)}",
        # Every database with TimescaleDB gets a scheduler worker; tests create many.
        "max_worker_processes = 32",
        "timescaledb.max_background_workers = 24",
        "",
    ])


def write_config(layout: Layout, port: int) -> bool:
    """True if the config changed (a running server must restart to pick it up)."""
    path = layout.host(f"{DATA}/machikit.conf")
    text = config_text(layout, port)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8", newline="\n")
    chown(layout.root, path, "postgres", 0o600)
    return True


def _pidfile(layout: Layout) -> list[str]:
    try:
        return layout.host(f"{DATA}/postmaster.pid").read_text(encoding="utf-8").splitlines()
    except OSError:  # absent, or not root (the data dir is 0700 postgres)
        return []


def pid(layout: Layout) -> int | None:
    lines = _pidfile(layout)
    if lines and lines[0].strip().isdigit() and runs_in(int(lines[0]), layout.root, "postgres"):
        return int(lines[0])
    return None


def running_port(layout: Layout) -> int | None:
    lines = _pidfile(layout)
    return int(lines[3]) if pid(layout) and len(lines) > 3 else None


def _pg_ctl(layout: Layout, *args: str) -> None:
    result = run_in_root(layout.root, [f"{BIN}/pg_ctl", "-D", DATA, "-w", "-t", "60", *args],
                         user="postgres", timeout=90)
    if result.returncode:
        raise TestbedError(f"pg_ctl {args[-1]}", tail(layout.host(LOG)))


def start(layout: Layout) -> None:
    """Returns once the server accepts connections (pg_ctl -w)."""
    if pid(layout) is None:
        _clear_stale_lock(layout)
        _pg_ctl(layout, "-l", LOG, "start")


def _clear_stale_lock(layout: Layout) -> None:
    """After a crash (kill -9, OOM) postmaster.pid stays behind. PostgreSQL only checks
    kill(pid, 0), which also succeeds for a zombie, and where PID 1 reaps slowly
    (containers) that blocks the restart. Once no process of ours is left in the
    root, the lock is certainly stale."""
    locks = [layout.host(f"{DATA}/postmaster.pid"), *layout.host(RUN).glob(".s.PGSQL.*.lock")]
    if any(lock.exists() for lock in locks) and wait_until(
            lambda: not processes_in(layout.root, "postgres"), 10):
        for lock in locks:  # the data directory lock and the unix socket lock
            lock.unlink(missing_ok=True)


def stop(layout: Layout, mode: str = "fast") -> None:
    """smart | fast | immediate (immediate = crash-like, recovery on next start)."""
    if mode not in ("smart", "fast", "immediate"):
        raise ValueError(f"unknown shutdown mode {mode!r}")
    if pid(layout) is not None:
        _pg_ctl(layout, "-m", mode, "stop")


def psql(layout: Layout, sql: str, database: str = "postgres") -> str:
    """Run SQL as superuser over the root's unix socket (peer auth, no password).
    SQL goes through stdin so passwords never show up in `ps`."""
    port = running_port(layout)
    if port is None:
        raise TestbedError("PostgreSQL is not running")
    result = run_in_root(layout.root, [
        f"{BIN}/psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
        "-h", RUN, "-p", str(port), "-d", database,
    ], user="postgres", stdin=sql)
    if result.returncode:
        raise TestbedError("psql", result.stderr)
    return result.stdout


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# The Apache build ships job 3 "Job History Log Retention" but refuses to run it
# (TSL-only), logging a licence error on every retry. alter_job() is TSL-only too,
# so unschedule it in the catalog. Done in template1 *before* any database is
# created from it, so every test database inherits the quiet setting.
QUIET_JOB = ("UPDATE _timescaledb_config.bgw_job SET scheduled = false "
             "WHERE proc_name = 'policy_job_stat_history_retention' AND scheduled;")
TIMESCALE = f"CREATE EXTENSION IF NOT EXISTS timescaledb;\n{QUIET_JOB}\n"


def provision(layout: Layout, secret: dict[str, str]) -> None:
    """Idempotent: safe on every `up`; also re-syncs passwords with secrets.json.
    timescaledb is not a trusted extension, so it is created in template1 and
    databases the tests create (as the non-superuser machikit) inherit it."""
    psql(layout, TIMESCALE, "template1")
    psql(layout, f"""
ALTER ROLE postgres PASSWORD {_literal(secret['pg_postgres'])};
SELECT 'CREATE ROLE {PG_USER}' WHERE NOT EXISTS
  (SELECT FROM pg_roles WHERE rolname = '{PG_USER}') \\gexec
ALTER ROLE {PG_USER} LOGIN CREATEDB PASSWORD {_literal(secret['pg_machikit'])};
SELECT 'CREATE DATABASE {PG_DATABASE} OWNER {PG_USER}' WHERE NOT EXISTS
  (SELECT FROM pg_database WHERE datname = '{PG_DATABASE}') \\gexec
""")
    psql(layout, TIMESCALE, PG_DATABASE)


def check_tcp(layout: Layout, secret: dict[str, str], port: int) -> None:
    """What the tests do: SCRAM login over TCP as machikit."""
    result = run_in_root(layout.root, [
        f"{BIN}/psql", "-X", "-At", "-h", "127.0.0.1", "-p", str(port),
        "-U", PG_USER, "-d", PG_DATABASE, "-c", "SELECT 1",
    ], env={"PGPASSWORD": secret["pg_machikit"]})  # environment, not argv: `ps` shows argv
    if result.returncode:
        raise TestbedError("PostgreSQL TCP login", result.stderr)


def timescaledb_info(layout: Layout) -> tuple[str, str]:
    out = psql(layout, "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb';"
                       "SHOW timescaledb.license;", PG_DATABASE)
    version, licence = [*out.split(), "?", "?"][:2]
    return version, licence


def drop_test_databases(layout: Layout) -> int:
    """Databases named machikit_t_* are scratch databases made by tests."""
    names = psql(layout, r"SELECT datname FROM pg_database WHERE datname LIKE 'machikit\_t\_%';")
    for name in names.split():
        psql(layout, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE);')
    return len(names.split())
