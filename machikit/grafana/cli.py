"""`machikit grafana push | export`.

push:   to a running Grafana over its HTTP API (needs the `grafana` extra: grafana-client).
export: files for Grafana's file provisioning (no extra: plain files, mounted into a container).

The dashboards, the data source model and the folder come from machikit/grafana/dashboards.py;
this module only delivers them.
"""

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from machikit.texts import say

TOKEN_ENV = "GRAFANA_TOKEN"
DB_PASSWORD_ENV = "MACHIKIT_GRAFANA_DB_PASSWORD"
# The checked-in provisioning YAML (a source checkout only; an installed wheel generates it).
REPO_PROVISIONING = Path(__file__).resolve().parents[2] / "dashboards" / "provisioning"
# Where the generated provider YAML tells Grafana to look for the JSON files.
SSLMODES = ("disable", "require", "verify-ca", "verify-full")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    push = actions.add_parser("push", help=say("grafana_help_push"))
    push.add_argument("--url", required=True, help=say("grafana_help_url"))
    push.add_argument("--db-host", required=True, help=say("grafana_help_db_host"))
    push.add_argument("--db-name", default="machikit", help=say("grafana_help_db"))
    push.add_argument("--db-user", help=say("grafana_help_db"))
    push.add_argument("--db-sslmode", choices=SSLMODES, help=say("grafana_help_db_sslmode"))
    push.add_argument("--insecure", action="store_true", help=say("grafana_help_insecure"))
    export = actions.add_parser("export", help=say("grafana_help_export"))
    export.add_argument("--out", required=True, type=Path, help=say("grafana_help_out"))


def run_grafana(args: argparse.Namespace) -> int:
    if args.action == "export":
        return run_export(args.out)
    return run_push(args)


# --- push ---------------------------------------------------------------------------------

def run_push(args: argparse.Namespace) -> int:
    from machikit.grafana import push  # grafana-client: machikit/cli.py says if it is missing

    # Secrets come from the environment: a command-line argument would stay in shell history.
    token = os.environ.get(TOKEN_ENV, "").strip()
    password = os.environ.get(DB_PASSWORD_ENV, "")
    if not token or not password:
        print(say("grafana_no_token" if not token else "grafana_no_db_password"), file=sys.stderr)
        return 2
    target = push.Target(url=args.url, token=token, verify=not args.insecure)
    try:
        content = load_content(password, args.db_host, args.db_name, args.db_user,
                               args.db_sslmode)
        push.push(push.connect(target), content, args.url, print)
    except push.PushError as err:
        print(err, file=sys.stderr)
        return 2
    return 0


def load_content(password: str, db_host: str, db_name: str | None, db_user: str | None,
                 db_sslmode: str | None) -> Any:
    """The dashboards module's content, with the data source pointed at this town's DB."""
    from machikit.grafana import dashboards as boards  # not needed for --help
    from machikit.grafana.push import Content

    model = boards.datasource_model(password,
                                    **_connection(db_host, db_name, db_user, db_sslmode))
    return Content(folder_uid=boards.FOLDER_UID, folder_title=boards.FOLDER_TITLE,
                   datasource=model, dashboards=boards.all_dashboards())


def _connection(host: str | None, database: str | None, user: str | None,
                sslmode: str | None) -> dict[str, str]:
    """datasource_model()'s keyword arguments; a value not given keeps its default."""
    given = {"host": host, "database": database, "user": user, "sslmode": sslmode}
    return {key: value for key, value in given.items() if value}


# --- export -------------------------------------------------------------------------------

def run_export(out: Path) -> int:
    try:
        written = export(out)
    except OSError as err:
        print(say("grafana_export_failed", out=out, detail=err), file=sys.stderr)
        return 2
    print(say("grafana_exported", count=len(written), out=out))
    return 0


def export(out: Path) -> list[Path]:
    """out/provisioning/{datasources,dashboards}/*.yaml (the reviewed files of dashboards/,
    with ${VAR} placeholders Grafana fills from its environment) and out/dashboards/*.json."""
    from machikit.grafana import dashboards

    written: list[Path] = []
    for kind in ("datasources", "dashboards"):
        sources = sorted((REPO_PROVISIONING / kind).glob("*.yaml"))
        if not sources:
            raise FileNotFoundError(REPO_PROVISIONING / kind)
        target = out / "provisioning" / kind
        target.mkdir(parents=True, exist_ok=True)
        written += [Path(shutil.copyfile(source, target / source.name)) for source in sources]
    written.extend(Path(p) for p in dashboards.write_json(out / "dashboards"))
    return written
