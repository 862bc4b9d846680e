"""The message contract on CPython and on the real MicroPython unix port."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from machikit import contract
from tests.conftest import FIXTURES, REPO

MESSAGES = FIXTURES / "messages"
RUNNER = Path(__file__).with_name("contract_runner.py")
NOW_MS = json.loads((MESSAGES / "now.json").read_text())["now_ms"]
T = NOW_MS - 60_000


def expected(kind: str, case: dict, interpreter: str) -> dict:
    default = case.get("reason", "ok")
    reason = "ok" if kind == "good" else case.get("reason_" + interpreter, default)
    want = {"result": reason}
    if "items" in case:
        want["items"] = case["items"]
    elif case["topic"].endswith("/batch") and reason == "ok":
        want["items"] = ["ok"] * len(case["payload"]["items"])
    return want


def run_golden(command: list[str], interpreter: str, env: dict[str, str]) -> None:
    out = subprocess.run(
        [*command, str(RUNNER), str(MESSAGES)],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    ).stdout
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == len(list(MESSAGES.glob("*/*.json")))
    for line in lines:
        kind = line["file"].split("/")[0]
        case = json.loads((MESSAGES / line["file"]).read_text())
        got = {k: line[k] for k in ("result", "items") if k in line}
        assert got == expected(kind, case, interpreter), line


def test_golden_messages_on_cpython() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run_golden([sys.executable], "cpython", env)


@pytest.mark.services
def test_golden_messages_on_micropython(micropython: str) -> None:
    env = {**os.environ, "MICROPYPATH": str(REPO)}
    run_golden([micropython], "micropython", env)


@pytest.mark.services
def test_compiled_contract_runs_on_micropython(micropython: str, tmp_path: Path) -> None:
    """mpy-cross compiles the module, and the .mpy (what a board gets) passes too."""
    package = tmp_path / "machikit"
    package.mkdir()
    for name in ("__init__", "contract"):
        subprocess.run(
            [sys.executable, "-m", "mpy_cross", "-o", str(package / f"{name}.mpy"),
             str(REPO / "machikit" / f"{name}.py")],
            check=True, capture_output=True,
        )
    assert (package / "contract.mpy").stat().st_size > 1000
    env = {**os.environ, "MICROPYPATH": str(tmp_path)}
    run_golden([micropython], "micropython", env)


def test_every_channel_round_trips() -> None:
    built = {
        contract.POSITION: contract.position(1, T, 42.3, 140.9, speed=3.5, sats=8, hdop=1.1),
        contract.READING: contract.reading(2, T, "snow_depth", 35.2, "cm", "reference"),
        contract.EVENT: contract.event(3, T, "paper_taken", 75, "s"),
        contract.STATUS: contract.status("online", fw="0.1.0", rssi=-60, buffered=3),
        contract.COMMAND: contract.command({"interval_s": 60}),
    }
    for channel, msg in built.items():
        assert contract.decode(channel, contract.encode(msg), NOW_MS) == msg


def test_unsynced_clock_needs_boot_and_uptime() -> None:
    msg = contract.position(7, None, 42.3, 140.9, boot=3, up=12_000)
    assert msg["sync"] is False and "t" not in msg
    assert contract.decode(contract.POSITION, contract.encode(msg), NOW_MS) == msg
    del msg["up"]
    with pytest.raises(contract.ContractError) as err:
        contract.decode(contract.POSITION, contract.encode(msg), NOW_MS)
    assert (err.value.reason, err.value.detail) == ("missing_field", "up")


def test_batch_keeps_each_item_and_its_channel() -> None:
    items = [(contract.POSITION, contract.position(i, T + i, 42.3, 140.9)) for i in range(3)]
    items.append((contract.EVENT, contract.event(3, T + 3, "door_open")))
    results = contract.decode(contract.BATCH, contract.encode(contract.batch(items)), NOW_MS)
    assert [channel for channel, _ in results] == ["pos", "pos", "pos", "event"]
    assert [msg["seq"] for _, msg in results] == [0, 1, 2, 3]


def test_topics() -> None:
    name = contract.topic("muroran", "bus-01", contract.POSITION)
    assert name == "machikit/v1/muroran/bus-01/pos"
    assert contract.parse_topic(name) == ("muroran", "bus-01", "pos")
    assert contract.subscription() == "machikit/v1/+/+/+"
    for bad in ("machikit/v1/muroran/bus 01/pos", "machikit/v2/muroran/bus-01/pos", "a/b"):
        with pytest.raises(contract.ContractError):
            contract.parse_topic(bad)
    with pytest.raises(contract.ContractError):
        contract.topic("Muroran", "bus-01", "pos")


def test_deeply_nested_json_is_bad_json_not_a_crash() -> None:
    with pytest.raises(contract.ContractError) as err:
        contract.decode(contract.POSITION, b"[" * 4000, NOW_MS)
    assert err.value.reason == "bad_json"
