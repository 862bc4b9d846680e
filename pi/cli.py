"""`machikit pi …`: the Raspberry Pi jobs.

    machikit pi run gps|printer|snow [--config FILE]   # what the systemd service runs
    machikit pi install JOB / uninstall JOB            # one command: service + config file
    machikit pi gps-check FILE...                      # what a recorded NMEA log would give
    machikit pi gps-replay FILE [--speed N]            # a pretend receiver on a pty
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from machikit.texts import say

JOBS = ("gps", "printer", "snow")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_subparsers(dest="what", required=True)
    run = what.add_parser("run", help=say("pi_help_run"))
    run.add_argument("job", choices=JOBS)
    run.add_argument("--config", type=Path, help=say("pi_help_config"))
    for name in ("install", "uninstall"):
        sub = what.add_parser(name, help=say(f"pi_help_{name}"))
        sub.add_argument("job", choices=JOBS)
        sub.add_argument("--root", type=Path, default=None, help=say("pi_help_root"))
        sub.add_argument("--user", default="machikit", help=say("pi_help_user"))
        sub.add_argument("--no-start", action="store_true", help=say("pi_help_no_start"))
    check = what.add_parser("gps-check", help=say("pi_help_gps_check"))
    check.add_argument("files", nargs="+", type=Path)
    replay = what.add_parser("gps-replay", help=say("pi_help_gps_replay"))
    replay.add_argument("file", type=Path)
    replay.add_argument("--speed", type=float, default=1.0)
    replay.add_argument("--days-ago", type=int, default=0)


def run_pi(args: argparse.Namespace) -> int:
    if args.what == "run":
        return run_job(args.job, args.config)
    if args.what in ("install", "uninstall"):
        from pi import service

        action = service.install if args.what == "install" else service.uninstall
        return action(args)
    if args.what == "gps-check":
        from pi.gps import check

        return check.main([str(path) for path in args.files])
    return replay(args.file, args.speed, args.days_ago)


def run_job(job: str, config: Path | None) -> int:
    from pi.config import ConfigError, load

    try:
        cfg = load(job, config)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    if job == "gps":
        from pi import tracker_job

        return tracker_job.run(cfg)
    if job == "printer":
        from pi import printer

        return printer.run(cfg)
    from pi import snow

    return snow.run(cfg)


def replay(file: Path, speed: float, days_ago: int) -> int:
    from pi.replay import Replay

    player = Replay(file, speed=speed, days_ago=days_ago)
    print(say("pi_replay_ready", path=player.path), flush=True)
    try:
        player.play()
    except KeyboardInterrupt:
        pass
    finally:
        player.close()
    return 0
