# Checks every golden message with machikit.contract and prints one JSON line
# per file: {"file": ..., "result": "ok" | reason, "items": [...]}.
# Written for both interpreters: the tests run it with CPython and with the
# real MicroPython unix port and compare the lines with the expectations.
#
#   micropython contract_runner.py FIXTURES_DIR      (MICROPYPATH=repo root)
import json
import os
import sys

from machikit import contract


def payload_bytes(case):
    if "payload_text" in case:
        return case["payload_text"].encode()
    return contract.encode(case["payload"])


def item_results(results):
    out = []
    for channel, item in results:
        out.append(item.reason if isinstance(item, contract.ContractError) else "ok")
    return out


def check(case, now_ms):
    try:
        town, device, channel = contract.parse_topic(case["topic"])
        result = contract.decode(channel, payload_bytes(case), now_ms)
    except contract.ContractError as err:
        return {"result": err.reason, "detail": err.detail}
    if channel == contract.BATCH:
        return {"result": "ok", "items": item_results(result)}
    return {"result": "ok"}


def main(folder):
    now_ms = json.loads(open(folder + "/now.json").read())["now_ms"]
    for kind in ("good", "bad"):
        names = sorted(os.listdir(folder + "/" + kind))
        for name in names:
            case = json.loads(open(folder + "/" + kind + "/" + name).read())
            line = check(case, now_ms)
            line["file"] = kind + "/" + name
            print(json.dumps(line))


main(sys.argv[1])
