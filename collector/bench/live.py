"""`machikit bench live`: how late the live stream's updates reach a crowd.

Per run: a fresh server (stack.py), N SSE clients connected and holding their
snapshot, then the fleet publishes for plan.seconds (each bus one position
every interval, QoS 1, real Mosquitto → collector → TimescaleDB → API poll →
fan-out). Every vehicle feature every client receives is one delay sample.
"""

import time

from collector.bench import profile
from collector.bench.cpu import MachineMeter
from collector.bench.listeners import Crowd
from collector.bench.publishers import summary
from collector.bench.stack import HOST, MemoryWatch, Stack
from collector.bench.webplan import WebPlan

GRACE_S = 3.0  # after the last publish: its update reaches every client (poll ≤ 0.5 s)
TARGET_P99_MS = 1000
API_THREADS = {"MainThread": "main thread (event loop: requests, stream fan-out)"}


def run_live(plan: WebPlan, clients: int) -> dict:
    stack = Stack(plan)
    with stack:
        memory = MemoryWatch(stack.api_pid())
        idle_mb = memory.now() / 2**20
        crowd = Crowd(HOST, stack.port, stack.path("/live"), clients, plan.client_processes)
        stack.callback(crowd.close)
        ramp = crowd.start()
        connected_mb = memory.now() / 2**20
        pubs = stack.fleet(plan.seconds)
        meter = stack.meter()
        for pid in crowd.pids:
            meter.add("clients", pid)
        machine = MachineMeter()
        meter.start()
        machine.start()
        go = pubs.go()
        published = summary(pubs.collect(timeout=plan.seconds + 120), plan.seconds)
        time.sleep(GRACE_S)
        cpu = meter.stop()
        cpu["publishers"] = round(100 * published["cpu_s"] / (time.time() - go), 1)
        machine_use = machine.stop(cpu)
        mem = memory.stop()
        seen = crowd.stop()
    result = live_result(clients, len(crowd.jobs), ramp, published, seen)
    result["cpu_percent"], result["machine"] = cpu, machine_use
    result["api_memory"] = {"idle_mb": round(idle_mb, 1), "connected_mb": round(connected_mb, 1),
                            **mem, "per_client_kb": _per_client_kb(idle_mb, mem, ramp)}
    if stack.profile_to:  # py-spy writes its file when the API has stopped
        result["profile"] = {**profile.summarize(stack.profile_to, labels=API_THREADS),
                             "file": str(stack.profile_to)}
    return result


def live_result(clients: int, processes: int, ramp: dict, published: dict, seen: dict) -> dict:
    connected = ramp["connected"]
    expected = published["acked"] * connected
    per_client = seen["per_client"]
    delay = seen["delay"].summary()
    dropped = sum(seen["dropped"].values())
    received = delay["count"]
    return {
        "clients": clients, "connected": connected, "failed": ramp["failed"],
        "dropped": dropped, "dropped_reasons": seen["dropped"],
        "ramp_s": ramp["ramp_s"], "publish": published,
        "features": {"received": received, "expected": expected,
                     "repeated": seen["counts"].get("repeated", 0),
                     "complete_clients": sum(n >= published["acked"] for n in per_client),
                     "per_client_min": per_client[0] if per_client else None,
                     "per_client_max": per_client[-1] if per_client else None},
        "updates_per_client": round(seen["counts"].get("updates", 0) / max(1, connected), 1),
        "pings_per_client": round(seen["counts"].get("pings", 0) / max(1, connected), 1),
        "mb_received": round(seen["counts"].get("bytes", 0) / 2**20, 1),
        "delay_ms": delay, "build_ms": seen["build"].summary(),
        "fanout_ms": seen["fanout"].summary(),
        "fanout_everyone_ms": seen["everyone"].summary(),  # per update: until the last client
        "fanout_timeline": seen["timeline"],  # [now_ms, ms until the last client] per update
        "client": {"processes": processes, "lag_ms": seen["lag"].summary(),
                   "cpu_s": round(seen["cpu_s"], 1)},
        "publish_ok": published["acked"] == published["sent"],  # else the broker went away
        "target_met": bool(connected == clients and not dropped and received >= expected > 0
                           and published["acked"] == published["sent"]
                           and (delay.get("p99") or 1e9) <= TARGET_P99_MS),
    }


def _per_client_kb(idle_mb: float, mem: dict, ramp: dict) -> float | None:
    if not ramp["connected"]:
        return None
    return round((mem["peak_rss_mb"] - idle_mb) * 1024 / ramp["connected"], 1)
