"""The three measurements. Each returns a plain dict (the JSON report's items).

load:  publishers offer `rate` msg/s for plan.seconds into one running collector.
drain: a backlog is queued in the workers' sessions while they are stopped,
       then they start and we time until every row is stored.
naive: the same drain by the one-INSERT-per-message consumer.
"""

import multiprocessing
import time
from pathlib import Path

from collector.bench import naive, profile
from collector.bench.bed import SESSION_EXPIRY_S, subscription
from collector.bench.plan import Plan
from collector.bench.publishers import make_jobs, process_count, summary
from collector.bench.run import BenchError, Run

SHARED_GROUP = "bench"


def run_load(plan: Plan, rate: int) -> dict:
    with Run(plan) as run:
        run.add_workers(1, None)
        run.start_workers()
        run.wait_ready()
        go, published, cpu = _offer(run, rate)
        run.wait_rows(published["acked"], timeout=60 + published["acked"] / 1000)
        snaps = _final_stats(run)[run.workers[0].client_id]
        return {
            "target_rate": rate, "seconds": plan.seconds, "publish": published,
            "stored_rate": stored_rate(snaps, go, go + plan.seconds),
            "catch_up_s": round(max(0.0, run.receive_span()[1] - go - plan.seconds), 2),
            "latency": {"commit": commit_latency(snaps, go), "receive": run.receive_latency()},
            "cpu_percent": cpu, "check": run.rows_report(published["acked"]),
            "collector": _final(snaps), "per_second": per_second(snaps, go),
        }


def _offer(run: Run, rate: int) -> tuple[float, dict, dict]:
    """Publishers offer the rate; CPU is measured while they do."""
    plan = run.plan
    meter = run.meter()
    meter.add("collector", run.workers[0].pid)
    jobs = make_jobs(plan.mqtt_url, run.town, run.vehicles,
                     process_count(rate, plan.publishers), rate=rate, seconds=plan.seconds)
    pubs = run.publishers(jobs)
    meter.start()
    go = pubs.go()
    results = pubs.collect(timeout=plan.seconds + 180)
    cpu = meter.stop()
    published = summary(results, plan.seconds)
    cpu["publishers"] = round(100 * published["cpu_s"] / (time.time() - go), 1)
    return go, published, cpu


def _final_stats(run: Run) -> dict[str, list[dict]]:
    """Every worker's counters, once each has published after the last row."""
    assert run.stats is not None
    run.stats.wait_fresh(int(time.time() * 1000))
    return run.stats.snapshots


def run_drain(plan: Plan, workers: int, profile_to: Path | None = None) -> dict:
    with Run(plan) as run:
        run.add_workers(workers, SHARED_GROUP if workers > 1 else None, profile_to)
        published = _publish_backlog(run, plan.backlog)
        start, cpu = _drain(run, published["acked"])
        snaps = _final_stats(run)
        result = {"consumer": "collector", "workers": workers, "backlog": plan.backlog,
                  "publish": published, **drain_times(run, start, published["acked"]),
                  "cpu_percent": cpu, "check": run.rows_report(published["acked"]),
                  "per_worker": [_final(snaps[w.client_id]) for w in run.workers]}
    if profile_to:  # py-spy writes its file when the collector has stopped
        result["consumer"] = "collector (py-spy)"
        result["profile"] = {**profile.summarize(profile_to), "file": str(profile_to)}
    return result


def _drain(run: Run, count: int) -> tuple[float, dict]:
    """Start the workers on their queued sessions; CPU until every row is there."""
    meter = run.meter()
    meter.start()
    start = time.time()
    run.start_workers()
    for pid in run.worker_pids():
        meter.add("collector", pid)
    run.wait_rows(count, timeout=120 + count / 1000)
    return start, meter.stop()


def run_naive(plan: Plan) -> dict:
    with Run(plan) as run:
        client_id = f"{run.town}-naive"
        topic = subscription(run.town, None)
        run.sessions.create(client_id, topic)
        published = _publish_backlog(run, plan.naive_backlog)
        meter = run.meter()
        meter.start()
        start = time.time()
        proc = multiprocessing.get_context("spawn").Process(
            target=naive.consume, daemon=True,
            args=(plan.mqtt_url, run.db_url, run.town, client_id, topic, SESSION_EXPIRY_S))
        proc.start()
        run.stack.callback(_end, proc)
        meter.add("collector", proc.pid)
        run.wait_rows(published["acked"], timeout=120 + published["acked"] / 100)
        cpu = meter.stop()
        return {"consumer": "naive", "workers": 1, "backlog": plan.naive_backlog,
                "publish": published, **drain_times(run, start, published["acked"]),
                "cpu_percent": cpu, "check": run.rows_report(published["acked"])}


def _publish_backlog(run: Run, count: int) -> dict:
    """QoS 1 from several processes as fast as they go; every PUBACK awaited,
    so the whole backlog sits in the broker's queues before anyone drains it."""
    jobs = make_jobs(run.plan.mqtt_url, run.town, run.vehicles,
                     process_count(0, run.plan.publishers), count=count)
    pubs = run.publishers(jobs)
    pubs.go()
    published = summary(pubs.collect(timeout=600))
    if published["acked"] != count:
        raise BenchError(f"the broker acknowledged {published['acked']} of {count} messages")
    return published


def _end(proc) -> None:
    if proc.is_alive():
        proc.terminate()
    proc.join(10)


def drain_times(run: Run, start: float, count: int) -> dict:
    """wall: from starting the consumer to the last row received (start-up
    included); steady: first to last row received."""
    first, last = run.receive_span()
    wall, steady = last - start, last - first
    return {"startup_s": round(first - start, 3), "wall_s": round(wall, 3),
            "steady_s": round(steady, 3),
            "rate_wall": round(count / wall, 1) if wall > 0 else None,
            "rate": round((count - 1) / steady, 1) if steady > 0 else None}


def stored_rate(snaps: list[dict], start: float, end: float) -> float | None:
    """Rows committed per second while the load was offered (first second skipped:
    ramp-up), from the collector's own counters."""
    inside = [s for s in snaps if start + 1 <= s["time_ms"] / 1000 <= end]
    if len(inside) < 2:
        return None
    first, last = inside[0], inside[-1]
    seconds = (last["time_ms"] - first["time_ms"]) / 1000
    return round((last["stored"] - first["stored"]) / seconds, 1)


def commit_latency(snaps: list[dict], since: float) -> dict:
    """publish → commit from the collector's per-second percentiles (the raw
    ages stay in the collector). p50: median of the per-second p50s weighted by
    count; p99: the worst second's p99, an upper bound of the run's p99;
    p99_typical: the median second's p99."""
    ages = [s["age_ms"] for s in snaps if s["time_ms"] / 1000 > since and s.get("age_ms")]
    if not ages:
        return {}
    p99s = sorted(a["p99"] for a in ages)
    return {"p50": _weighted_median([(a["p50"], a["count"]) for a in ages]),
            "p99": p99s[-1], "p99_typical": p99s[len(p99s) // 2],
            "p99_run": _hist_percentile(ages, 0.99),
            "max": max(a["max"] for a in ages), "count": sum(a["count"] for a in ages),
            "seconds": len(ages), "source": "collector stats (age_ms per 1 s interval)"}


def _hist_percentile(ages: list[dict], q: float) -> float | None:
    """The run's percentile from the merged per-second histograms: the upper bound
    of the bucket it falls in (1 ms buckets up to 20 ms)."""
    merged: dict[float, int] = {}
    for a in ages:
        for bound, count in a.get("hist", {}).items():
            merged[float(bound)] = merged.get(float(bound), 0) + count
    total, seen = sum(merged.values()), 0
    for bound in sorted(merged):
        seen += merged[bound]
        if total and seen >= q * total:
            return bound
    return None


def _weighted_median(pairs: list[tuple[int, int]]) -> int:
    pairs.sort()
    half, seen = sum(c for _, c in pairs) / 2, 0
    for value, count in pairs:
        seen += count
        if seen >= half:
            return value
    return pairs[-1][0]


def per_second(snaps: list[dict], since: float) -> list[dict]:
    """The collector's counters second by second (t: seconds since publishing began)."""
    return [{"t": round(s["time_ms"] / 1000 - since, 1), "rate": s["rate_per_s"],
             "pending": s["pending"], **{k: s["age_ms"].get(k) for k in ("p50", "p99")}}
            for s in snaps if s["time_ms"] / 1000 > since and s.get("age_ms")]


def _final(snaps: list[dict]) -> dict:
    last = snaps[-1] if snaps else {}
    keys = ("client_id", "received", "stored", "duplicates", "quarantined", "batches",
            "db_errors")
    return {k: last.get(k) for k in keys}
