"""`machikit bench api`: `GET …/vehicles` latency under a paced, open-loop load.

A fresh server (stack.py) with the fleet moving as in service (so the
collector writes and the data changes while we read), then two runs of
plan.seconds at plan.rate: plain GETs (200, full body) and GETs with
`If-None-Match` carrying the newest ETag seen (304 unless the data changed).
The client is a separate process; its lag and CPU are in the report.
With --live-clients, a crowd listens to the live stream meanwhile.
"""

import multiprocessing

from collector.bench import profile
from collector.bench.cpu import MachineMeter
from collector.bench.crowd import next_message
from collector.bench.listeners import Crowd
from collector.bench.loadgen import LoadJob, run_load
from collector.bench.stack import HOST, MemoryWatch, Stack
from collector.bench.webplan import WebPlan

TARGET_P99_MS = 20
FLEET_FOREVER_S = 24 * 3600  # the buses run until the stack is torn down
API_THREADS = {"MainThread": "main thread (event loop: requests)"}


def run_api(plan: WebPlan) -> dict:
    stack = Stack(plan)
    with stack:
        stack.fleet(FLEET_FOREVER_S).go()
        shown = stack.wait_vehicles(plan.fleet, timeout=2 * plan.interval_s + 30)
        live = _crowd(stack)
        memory = MemoryWatch(stack.api_pid())
        runs = [_one_run(stack, rate, conditional)
                for rate in plan.rates for conditional in (False, True)]
        mem = memory.stop()
        if live:
            seen = live[0].stop()
            live[1]["dropped"] = seen["dropped"]
            live[1]["delay_ms"] = seen["delay"].summary()
    result = {"rates": plan.rates, "seconds": plan.seconds, "vehicles_shown": shown,
              "live": live[1] if live else None, "runs": runs, "api_memory": mem}
    if stack.profile_to:
        result["profile"] = {**profile.summarize(stack.profile_to, labels=API_THREADS),
                             "file": str(stack.profile_to)}
    return result


def _crowd(stack: Stack) -> tuple[Crowd, dict] | None:
    """SSE clients listening while the API is measured (the real mix), if asked."""
    if not stack.plan.live_clients:
        return None
    crowd = Crowd(HOST, stack.port, stack.path("/live"), stack.plan.live_clients,
                  stack.plan.client_processes)
    stack.callback(crowd.close)
    return crowd, crowd.start()


def _one_run(stack: Stack, rate: int, conditional: bool) -> dict:
    """The client warms up, says so, then measures; server CPU over the measured part."""
    plan = stack.plan
    job = LoadJob(HOST, stack.port, stack.path("/vehicles"), rate, plan.seconds,
                  plan.connections, conditional)
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=run_load, args=(job, results), daemon=True)
    proc.start()
    stack.callback(_end, proc)
    meter, machine = stack.meter(), MachineMeter()
    next_message(results, [proc], timeout=60)  # warmed up
    meter.start()
    machine.start()
    found = next_message(results, [proc], timeout=plan.seconds + 60)
    cpu = meter.stop()
    cpu["client"] = found["client"]["cpu_percent"]
    found["cpu_percent"], found["machine"] = cpu, machine.stop(cpu)
    latency = found["latency_ms"]
    found["target_met"] = bool(not found["errors"] and latency.get("count")
                               and latency["p99"] <= TARGET_P99_MS)
    return found


def _end(proc) -> None:
    if proc.is_alive():
        proc.terminate()
    proc.join(5)
