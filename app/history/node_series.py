"""A node's own series where its Beacon's reported summaries are not kept (SPEC §5).

Beyond the live hour (and wherever a minute has no reported summary) the node's point of
a minute is the mean over its probes, each probe's latest minute carried forward for up
to its `interval_seconds`: a probe run every 300 s counts in each of the five minutes
after its run, not only in the one it ran in. Latency is the mean over the probes whose
minute received something, loss over every probe counted (a dead target counts 100, as
in the Beacon's own summary).
"""

from __future__ import annotations

from app.history.points import MINUTE_MS


def _mean(values: list) -> float | None:
    return sum(values) / len(values) if values else None


def derived_minutes(intervals: dict[str, int], minutes: dict[str, list[dict]],
                    start_ms: int, end_ms: int, step_ms: int = MINUTE_MS) -> dict[int, dict]:
    """Node points every `step_ms` in [start_ms, end_ms] from each probe's points of that
    step (minutes, or hours from the rollups), oldest first.

    intervals: probe id -> interval_seconds; minutes: probe id -> that probe's points.
    """
    first = start_ms - start_ms % step_ms
    if first < start_ms:
        first += step_ms
    cursors = {probe: 0 for probe in minutes}
    result: dict[int, dict] = {}
    for minute in range(first, end_ms + 1, step_ms):
        counted = []
        for probe, points in minutes.items():
            i = cursors[probe]
            while i + 1 < len(points) and points[i + 1]["ts_ms"] <= minute:
                i += 1
            cursors[probe] = i
            if not points or points[i]["ts_ms"] > minute:
                continue
            if minute - points[i]["ts_ms"] < max(intervals.get(probe, 60) * 1000, step_ms):
                counted.append(points[i])
        if not counted:
            continue  # no probe measured within its interval: a gap, not a zero
        latencies = [p["latency_ms"] for p in counted if p["latency_ms"] is not None]
        jitters = [p["jitter_ms"] for p in counted if p["jitter_ms"] is not None]
        lows = [p["latency_min_ms"] for p in counted if p.get("latency_min_ms") is not None]
        highs = [p["latency_max_ms"] for p in counted if p.get("latency_max_ms") is not None]
        result[minute] = {
            "ts_ms": minute, "latency_ms": _mean(latencies),
            "packet_loss_rate": _mean([p["packet_loss_rate"] for p in counted]),
            "jitter_ms": _mean(jitters), "latency_min_ms": min(lows, default=None),
            "latency_median_ms": _mean([p["latency_median_ms"] for p in counted
                                        if p.get("latency_median_ms") is not None]),
            "latency_p95_ms": _mean([p["latency_p95_ms"] for p in counted
                                     if p.get("latency_p95_ms") is not None]),
            "latency_max_ms": max(highs, default=None), "sent": None, "received": None,
            "jitter_max_ms": max(jitters, default=None),
            "packet_loss_max": max(p["packet_loss_rate"] for p in counted),
            "sample_count": len(counted), "_latency_runs": len(latencies), "_computed": True,
        }
    return result
