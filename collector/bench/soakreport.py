"""The soak's report as text: the verdict first, then delays, faults, memory."""

from collector.bench.report import num, table
from machikit.texts import say

DELAY_KINDS = (("received", "送信→受信 publish→received"),
               ("stored", "送信→保存 publish→stored"),
               ("live", "送信→地図 publish→live stream"))
WINDOWS = (("baseline", "最初 first"), ("last_minute", "最後の1分 last minute"),
           ("run", "全体 whole run"))


def _delay(d: dict) -> str:
    if not d.get("count"):
        return "-"
    p99 = "> 5,000" if d.get("p99") is None and d.get("over_5000") else num(d.get("p99"))
    return f"{num(d.get('p50'))} / {p99} / {num(d.get('max'))}"


def delay_rows(delays: dict) -> list[list[str]]:
    ratios = delays["ratio_p99_run_to_baseline"]
    return [[label, *(_delay(delays[w][kind]) for w, _ in WINDOWS),
             "-" if ratios[kind] is None else f"x{ratios[kind]}"]
            for kind, label in DELAY_KINDS]


def event_rows(events: list[dict]) -> list[list[str]]:
    return [[e["what"], num(e["at_s"]), num(e["down_s"], 1), num(e["data_again_s"], 1),
             num(e["backlog_stored_s"], 1)] for e in events]


def memory_rows(memory: dict) -> list[list[str]]:
    return [[part, *(num(memory[part][k], 1) for k in ("start", "middle", "end", "peak")),
             str(memory[part]["processes"])] for part in ("collector", "broker", "api")]


def render(report: dict) -> str:
    counts, verdict, live = report["counts"], report["verdict"], report["live"]
    machine, plan = report["machine"], report["plan"]
    parts = [say("bench_soak_title", minutes=plan["duration_s"] / 60, vehicles=plan["vehicles"],
                 vehicle_every=plan["vehicle_every_s"], sensors=plan["sensors"],
                 sensor_every=plan["sensor_every_s"], viewers=plan["viewers"],
                 pollers=plan["pollers"], poll_every=plan["poll_every_s"]),
             say("bench_soak_machine", cpus=machine["cpus"],
                 start=" ".join(map(str, machine["load_start"])),
                 end=" ".join(map(str, machine.get("load_end", [])))),
             "",
             say("bench_soak_ok") if verdict["exactly_once"] else
             say("bench_soak_loss", loss=verdict["loss"], duplicates=verdict["duplicates"],
                 quarantined=verdict["quarantined"]),
             table(["送信(受理) sent (acked)", "保存 stored", "重複 duplicates", "欠損 LOSS",
                    "隔離 quarantined", "未受理 unacked", "再接続 reconnects",
                    "DBエラー db errors"],
                   [[num(counts["sent_acked"]), num(counts["stored"]),
                     num(counts["duplicates"]), num(counts["loss"]),
                     num(counts["quarantined"]), num(report["published"]["unacked"]),
                     num(report["published"]["vehicles"]["reconnects"]
                         + report["published"]["sensors"]["reconnects"]),
                     num(report.get("collector_db_errors"))]]),
             "",
             table(["遅延 delay p50 / p99 / max ms", *(w for _, w in WINDOWS),
                    "p99 全体/最初 run/first"], delay_rows(report["delays_ms"])),
             ""]
    if report["events"]:
        parts += [table(["出来事 event", "開始 at s", "停止 down s", "再開 data again s",
                         "滞留保存 backlog stored s"], event_rows(report["events"])), ""]
    parts += [table(["RSS MB", "開始 start", "中間 middle", "終了 end", "最大 peak",
                     "プロセス processes"], memory_rows(report["memory_mb"])),
              "",
              say("bench_soak_live", connected=live["connected"], viewers=live["viewers"],
                  dropped=live["dropped"], probe_drops=live["probe"]["drops"],
                  errors=report["api_5xx"],
                  polls=(report["pollers"] or {}).get("requests", 0)),
              "", say("bench_soak_notes")]
    return "\n".join(parts)
