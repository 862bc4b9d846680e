"""Exact percentiles of many latencies, cheaply: a count per step (1 ms, 0.01 ms…).

Millions of samples (every feature every client receives) cost one dict entry
per distinct step, and histograms from several processes simply add up.
"""

from collections import Counter


class Histogram:
    def __init__(self, step_ms: float = 1.0, counts: dict[int, int] | None = None) -> None:
        self.step_ms = step_ms
        self.counts: Counter[int] = Counter(counts or {})

    def add(self, value_ms: float) -> None:
        self.counts[round(value_ms / self.step_ms)] += 1

    def merge(self, other: "Histogram | dict[int, int]") -> None:
        self.counts.update(other.counts if isinstance(other, Histogram) else other)

    def __len__(self) -> int:
        return sum(self.counts.values())

    def percentile(self, q: float) -> float | None:
        """The smallest value with at least q of the samples at or below it."""
        total, seen = len(self), 0
        for step in sorted(self.counts):
            seen += self.counts[step]
            if total and seen >= q * total:
                return step * self.step_ms
        return None

    def summary(self, digits: int = 1) -> dict:
        if not self.counts:
            return {"count": 0}
        found = {name: self.percentile(q) for name, q in
                 (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999))}
        found["min"] = min(self.counts) * self.step_ms
        found["max"] = max(self.counts) * self.step_ms
        return {"count": len(self),
                **{k: None if v is None else round(v, digits) for k, v in found.items()}}
