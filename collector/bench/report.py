"""The report: readable tables (Japanese and English headers) and the targets."""

import unicodedata

from machikit.texts import say

# (what, how to find the run, the value's key, limit, ≥ or ≤)
TARGETS = (
    ("1 collector ≥ 15k msg/s", "drain", 1, "rate", 15_000, ">="),
    ("2 workers ≥ 30k msg/s", "drain", 2, "rate", 30_000, ">="),
    ("p99 publish→commit ≤ 10 ms @ 5k msg/s", "load", 5000, "p99_run", 10, "<="),
)


def width(text: str) -> int:
    """Display width: Japanese characters take two columns."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(width(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def pad(cells: list[str]) -> str:
        return "  ".join(c + " " * (w - width(c)) for c, w in zip(cells, widths, strict=True))

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([pad(headers), rule, *map(pad, rows)])


def num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _pair(d: dict) -> str:
    return f"{num(d.get('p50'), 1)} / {num(d.get('p99'), 1)}" if d else "-"


def _commit(d: dict) -> str:
    """p50 / the run's p99 (worst second's p99)."""
    return f"{d['p50']} / {num(d.get('p99_run'))} ({d['p99']})" if d else "-"


def _cpu(cpu: dict) -> list[str]:
    return [num(cpu.get(k)) for k in ("collector", "mosquitto", "postgres")]


def _once(check: dict) -> str:
    mark = "✓" if check["exactly_once"] else "✗"
    return f"{mark} {check['rows']:,}/{check['expected']:,}"


LOAD_HEADERS = ["目標 target/s", "送信 offered/s", "保存 stored/s", "追いつき catch-up s",
                "commit p50/p99 (最悪 worst) ms", "受信 receive p50/p99 ms", "CPU% collector",
                "mosquitto", "postgres", "publishers", "全件1回 rows/sent"]


def load_rows(loads: list[dict]) -> list[list[str]]:
    return [[num(r["target_rate"]), f"{num(r['publish']['rate'])} ({r['publish']['processes']}p)",
             num(r["stored_rate"]), num(r["catch_up_s"], 2), _commit(r["latency"]["commit"]),
             _pair(r["latency"]["receive"]), *_cpu(r["cpu_percent"]),
             num(r["cpu_percent"].get("publishers")), _once(r["check"])]
            for r in loads]


DRAIN_HEADERS = ["方式 consumer", "workers", "滞留 backlog", "投入 publish/s", "起動 start s",
                 "処理 drain s", "msg/s", "msg/s 起動込 wall", "分担 split", "CPU% collector",
                 "mosquitto", "postgres", "全件1回 rows/sent"]


def drain_rows(drains: list[dict]) -> list[list[str]]:
    return [[r["consumer"], str(r["workers"]), num(r["backlog"]),
             f"{num(r['publish']['rate'])} ({r['publish']['processes']}p)",
             num(r["startup_s"], 2), num(r["steady_s"], 2), num(r["rate"]), num(r["rate_wall"]),
             _split(r), *_cpu(r["cpu_percent"]), _once(r["check"])]
            for r in drains]


def _split(r: dict) -> str:
    return " / ".join(num(w.get("stored")) for w in r.get("per_worker", [])) or "-"


def targets(report: dict) -> list[dict]:
    """Each target of the issue: the measured value and whether it is reached."""
    found = []
    for what, kind, key, field, limit, op in TARGETS:
        value = _target_value(report, kind, key, field)
        reached = None if value is None else (value >= limit if op == ">=" else value <= limit)
        found.append({"target": what, "value": value, "reached": reached,
                      "note": _target_note(report, kind, key)})
    return found


def _target_note(report: dict, kind: str, key: int) -> str:
    """How the value was found: which run, and for p99 the typical second too."""
    if kind == "drain":
        return "backlog drain, first to last row received"
    runs = [r for r in report["loads"] if r["target_rate"] == key]
    commit = runs[0]["latency"]["commit"] if runs else {}
    return (f"whole run, ≤ bucket bound; worst second {commit['p99']} ms,"
            f" p50 {commit['p50']} ms" if commit else "")


def _target_value(report: dict, kind: str, key: int, field: str) -> float | None:
    if kind == "drain":
        runs = [d for d in report["drains"] if d["consumer"] == "collector"
                and d["workers"] == key]
        return runs[0][field] if runs else None
    runs = [r for r in report["loads"] if r["target_rate"] == key]
    return runs[0]["latency"]["commit"].get(field) if runs else None


def render(report: dict) -> str:
    parts = [say("bench_title", cpus=report["environment"]["cpus"],
                 mosquitto=report["environment"]["mosquitto"],
                 postgres=report["environment"]["postgres"])]
    if report["loads"]:
        parts += ["", say("bench_loads_title"), table(LOAD_HEADERS, load_rows(report["loads"]))]
    if report["drains"]:
        parts += ["", say("bench_drains_title"),
                  table(DRAIN_HEADERS, drain_rows(report["drains"]))]
    if report.get("naive_ratio"):
        parts += ["", say("bench_ratio", ratio=report["naive_ratio"])]
    parts += ["", say("bench_targets_title"), *map(_target_line, report["targets"])]
    parts += _profile_lines(report)
    parts += ["", say("bench_notes")]
    return "\n".join(parts)


def _target_line(t: dict) -> str:
    mark = {True: "✓", False: "✗", None: "?"}[t["reached"]]
    note = f" ({t['note']})" if t.get("note") else ""
    return f"  {mark} {t['target']}: {num(t['value'], 1)}{note}"


def _profile_lines(report: dict) -> list[str]:
    found = [d["profile"] for d in report["drains"] if d.get("profile")]
    return profile_lines(found[0] if found else None, "bench_profile_title")


def profile_lines(prof: dict | None, title_key: str) -> list[str]:
    """A py-spy profile summary: share per thread, per function, per function in each thread."""
    if not prof:
        return []
    lines = ["", say(title_key, samples=prof["samples"], file=prof["file"])]
    lines += _shares("threads", prof["threads"]) + _shares("self time", prof["self"])
    for thread, shares in prof["by_thread"].items():
        if shares:
            lines += _shares(f"inside {thread}", shares)
    return lines


def _shares(title: str, shares: dict[str, float]) -> list[str]:
    return [f"  [{title}]", *(f"    {share:5.1f}%  {name}" for name, share in shares.items())]
