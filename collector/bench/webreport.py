"""The live and API benchmarks' report: tables, targets and what limited a run."""

from collector.bench.report import num, profile_lines, table
from machikit.texts import say

LIVE_HEADERS = ["clients", "接続/失敗/切断 in/failed/dropped", "接続 ramp s",
                "受信/期待 features", "遅延 delay p50/p95/p99/max ms", "build p50/p99",
                "fan-out p50/p99", "全員 all in p50/p99", "CPU% api", "collector",
                "mosquitto", "postgres", "clients", "他 other", "API RSS MB",
                "client lag p99 ms", "目標"]
API_HEADERS = ["run", "req/s", "status", "errors", "latency p50/p90/p99/max ms",
               "service p50/p99", "conn wait p99", "bytes", "client lag p99 / CPU%", "CPU% api",
               "collector", "postgres", "他 other", "目標"]


def _mark(met: bool | None) -> str:
    return {True: "✓", False: "✗", None: "?"}[met]


def _ms(d: dict, keys: tuple[str, ...], digits: int = 0) -> str:
    return " / ".join(num(d.get(k), digits) for k in keys) if d.get("count") else "-"


def _api_cpu(cpu: dict) -> str:
    """The API's CPU; `serve` runs it with the collector in one process."""
    return num(cpu["api"]) if "api" in cpu else f"{num(cpu.get('serve'))} (serve)"


def live_rows(runs: list[dict]) -> list[list[str]]:
    rows = []
    for r in runs:
        cpu, f = r["cpu_percent"], r["features"]
        rows.append([
            num(r["clients"]),
            f"{num(r['connected'])} / {num(sum(r['failed'].values()))} / {num(r['dropped'])}",
            num(r["ramp_s"], 1), f"{num(f['received'])} / {num(f['expected'])}",
            _ms(r["delay_ms"], ("p50", "p95", "p99", "max")),
            _ms(r["build_ms"], ("p50", "p99")), _ms(r["fanout_ms"], ("p50", "p99")),
            _ms(r["fanout_everyone_ms"], ("p50", "p99")),
            _api_cpu(cpu), num(cpu.get("collector")), num(cpu.get("mosquitto")),
            num(cpu.get("postgres")), num(cpu.get("clients")), num(r["machine"]["other"]),
            f"{num(r['api_memory']['peak_rss_mb'])}",
            num(r["client"]["lag_ms"].get("p99")), _mark(r["target_met"])])
    return rows


def limit(run: dict, cpus: int, poll_s: float) -> str:
    """The likeliest reasons a run missed the target, from what was measured."""
    cpu = run["cpu_percent"]
    reasons = []
    if not run["publish_ok"]:
        reasons.append(f"the broker acknowledged {run['publish']['acked']} of"
                       f" {run['publish']['sent']} positions (restarted?): run not valid")
    machine = run["machine"]
    if machine["other"] >= 20:
        reasons.append(f"other work on this machine used {machine['other']:.0f} % CPU")
    if machine["tcp_retransmits"]:
        reasons.append(f"{machine['tcp_retransmits']} TCP segments sent again (each ≥ 200 ms)")
    if run["failed"]:
        reasons.append("connections refused: " + ", ".join(
            f"{k} × {v}" for k, v in run["failed"].items()))
    if run["dropped"]:
        reasons.append("streams dropped: " + ", ".join(
            f"{k} × {v}" for k, v in run["dropped_reasons"].items()))
    api = cpu.get("api", cpu.get("serve")) or 0
    if api >= 85:
        reasons.append(f"the API process uses {api:.0f} % of one core (its one event loop)")
    total = machine["machine"]
    if total >= 85 * cpus:
        reasons.append(f"the machine's CPUs are busy ({total:.0f} % of {100 * cpus} %)")
    if (run["client"]["lag_ms"].get("p99") or 0) > 100:
        reasons.append("the client processes run late (their loop lag): the crowd itself")
    build, everyone = run["build_ms"].get("p99") or 0, run["fanout_everyone_ms"].get("p99") or 0
    if build > 1000 * poll_s + 100:
        reasons.append(f"updates leave late: t → now_ms p99 {build:.0f} ms for a"
                       f" {poll_s} s poll (the poller waits for the busy process)")
    if everyone > 250:
        reasons.append(f"fan-out: the last client gets an update {everyone:.0f} ms (p99) after"
                       f" it was made, with the API at {api:.0f} % CPU: its event loop stalls"
                       " (per-client sends, full GC pauses; docs/benchmarks.md)")
    return "; ".join(reasons) or "?"


def render_live(report: dict) -> str:
    env, runs = report["environment"], report["runs"]
    parts = [say("bench_live_title", cpus=env["cpus"], server=env["server"],
                 poll=env["live_poll_s"], fleet=env["fleet"], interval=env["interval_s"]),
             table(LIVE_HEADERS, live_rows(runs)), "", say("bench_targets_title")]
    for r in runs:
        line = f"  {_mark(r['target_met'])} {r['clients']:,} clients: p99 ≤ 1000 ms, all in"
        if not r["target_met"]:
            line += f" — {limit(r, env['cpus'], env['live_poll_s'])}"
        parts.append(line)
    parts += ["", say("bench_nofile", soft=env["nofile_soft_hard"][0],
                      hard=env["nofile_soft_hard"][1])]
    for r in runs:
        parts += profile_lines(r.get("profile"), "bench_api_profile_title")
    parts += ["", say("bench_live_notes")]
    return "\n".join(parts)


def api_rows(runs: list[dict]) -> list[list[str]]:
    rows = []
    for r in runs:
        cpu, client = r["cpu_percent"], r["client"]
        rows.append([
            "If-None-Match" if r["conditional"] else "plain",
            f"{num(r['rate'])} → {num(r['achieved_rate'])}",
            " ".join(f"{k}×{v}" for k, v in sorted(r["statuses"].items())),
            " ".join(f"{k}×{v}" for k, v in r["errors"].items()) or "0",
            _ms(r["latency_ms"], ("p50", "p90", "p99", "max"), 1),
            _ms(r["service_ms"], ("p50", "p99"), 1),
            num(client["connection_wait_ms"].get("p99"), 1), num(r["bytes_per_response"]),
            f"{num(client['lag_ms'].get('p99'), 2)} / {num(client['cpu_percent'])}",
            _api_cpu(cpu), num(cpu.get("collector")), num(cpu.get("postgres")),
            num(r["machine"]["other"]), _mark(r["target_met"])])
    return rows


def render_api(report: dict) -> str:
    env, api = report["environment"], report["api"]
    parts = [say("bench_api_title", cpus=env["cpus"], server=env["server"],
                 seconds=api["seconds"], shown=api["vehicles_shown"])]
    if api.get("live"):
        live = api["live"]
        parts.append(say("bench_api_live", clients=live["connected"],
                         p99=live["delay_ms"].get("p99"), dropped=sum(live["dropped"].values())))
    parts += [table(API_HEADERS, api_rows(api["runs"])), "", say("bench_targets_title")]
    parts += [f"  {_mark(r['target_met'])} p99 ≤ 20 ms @ {num(r['rate'])} req/s"
              f" ({'If-None-Match' if r['conditional'] else 'plain'}):"
              f" {num(r['latency_ms'].get('p99'), 1)} ms" for r in api["runs"]]
    parts += profile_lines(api.get("profile"), "bench_api_profile_title")
    parts += ["", say("bench_api_notes")]
    return "\n".join(parts)


