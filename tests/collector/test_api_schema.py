"""The public API against its own OpenAPI schema, with Schemathesis and every check.

A real server (uvicorn on a free port, the seeded town of test_api.py) on both
storage engines. Schemathesis reads /openapi.json and sends what the schema
allows and what it does not (wrong types, out-of-range numbers, odd strings,
methods the API lacks): no answer may be a 5xx, and every answer must be one
the schema describes (status, content type, body, headers).

Two runs per engine: one lets Schemathesis make up every value (so mostly
unknown towns and devices), one fixes the town and device names to the
seeded ones so the query values reach the database.
"""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.collector.test_api import TOWN, Api
from tests.collector.test_api import api as api  # the seeded server on SQLite and TimescaleDB

EXAMPLES = 20  # per operation and phase: about 300 requests a run, a few seconds to ~40 s

# Schemathesis sends with `requests`; in this venv `urllib3` is urllib3-future (it
# replaces the package, brought by grafana-client's niquests), whose pool container
# lacks the .keys() Schemathesis uses only to decide whether to resend a request on
# a dropped keep-alive connection. Counting no connections keeps that decision simple.
RUN = ("import schemathesis.transport.requests as transport; "
       "transport._count_opened_connections = lambda session: 0; "
       "from schemathesis.cli import schemathesis; schemathesis()")

SEEDED_NAMES = f"""
[[operations]]
include-path-regex = "^/api/v1/towns/\\\\{{town\\\\}}/(vehicles|sensors|live)$"
parameters = {{ town = "{TOWN}" }}

[[operations]]
include-path = "/api/v1/towns/{{town}}/vehicles/{{name}}/track"
parameters = {{ town = "{TOWN}", name = "bus-01" }}

[[operations]]
include-path = "/api/v1/towns/{{town}}/sensors/{{name}}/history"
parameters = {{ town = "{TOWN}", name = "snow-01" }}
"""


def schemathesis(api: Api, folder: Path, config: str) -> tuple[subprocess.CompletedProcess, list]:
    """One Schemathesis run with every check; its output and the requests it made (HAR)."""
    folder.mkdir()
    (folder / "schemathesis.toml").write_text(config, encoding="utf-8", newline="\n")
    command = [sys.executable, "-c", RUN, "--no-color",
               "--config-file", str(folder / "schemathesis.toml"),
               "run", api.web.url + "/openapi.json", "--checks", "all",
               "--max-examples", str(EXAMPLES), "--seed", "20261206", "--workers", "1",
               "--request-timeout", "10", "--report", "har", "--report-dir", str(folder)]
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True,
                          encoding="utf-8", timeout=300)
    har = next(folder.glob("har-*.json"))
    return done, json.loads(har.read_text(encoding="utf-8"))["log"]["entries"]


@pytest.mark.parametrize("names", ["made_up", "seeded"])
def test_every_answer_matches_the_schema_and_none_is_a_5xx(
        api: Api, tmp_path: Path, names: str) -> None:
    done, requests = schemathesis(api, tmp_path / names,
                                  SEEDED_NAMES if names == "seeded" else "")
    statuses = Counter(entry["response"]["status"] for entry in requests)
    errors = sum(n for status, n in statuses.items() if status >= 500)
    refused = sum(n for status, n in statuses.items() if 400 <= status < 500)
    print(f"\nschemathesis {api.storage.engine} {names}: {len(requests)} requests, "
          f"{refused} bad inputs refused (4xx), {errors} server errors (5xx); "
          f"by status {dict(sorted(statuses.items()))}")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert errors == 0
    assert len(requests) > 100  # it really ran
    assert statuses[422] > 0 and statuses[405] > 0  # bad values and methods were tried
    if names == "made_up":
        assert statuses[404] > 100  # towns that do not exist
    else:
        assert statuses[200] > 100
        paths = {entry["request"]["url"].split("?")[0] for entry in requests
                 if entry["response"]["status"] == 200}
        assert any(path.endswith("/history") for path in paths)  # the database was asked
        assert any(path.endswith("/track") for path in paths)
