"""The shapes of answered points, and how points fold into minutes and larger buckets.

A point is a dict keyed by `ts_ms` and the SPEC §5 names. Latency figures are None for a
run that received nothing and never count as 0: latency means and spreads are over the
runs that received something, loss over every run (as `aggregation` computes in SQL).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import func

from app.extensions import db
from app.history.live_cache import Point
from app.timeutil import MINUTE_MS

LATENCY_FIELDS = ("latency_ms", "latency_min_ms", "latency_median_ms", "latency_p95_ms",
                  "latency_max_ms")
RAW_FIELDS = ("latency_ms", "packet_loss_rate", "jitter_ms", "latency_min_ms",
              "latency_median_ms", "latency_p95_ms", "latency_max_ms", "sent", "received",
              "error")
AGG_FIELDS = (*RAW_FIELDS[:-1], "jitter_max_ms", "packet_loss_max", "sample_count")
ROUNDED = frozenset({*LATENCY_FIELDS, "packet_loss_rate", "jitter_ms", "jitter_max_ms",
                     "packet_loss_max"})

# Internal: how many runs a bucket's latency means stand for (weights when rolling up).
LATENCY_RUNS = "_latency_runs"
COMPUTED = "_computed"  # a point folded or rolled up here, its values to be rounded


def _num(value) -> float | None:
    return None if value is None else float(value)


def from_live(point: Point) -> dict:
    return {"ts_ms": point.ts_ms, "latency_ms": point.latency_ms,
            "packet_loss_rate": point.packet_loss_rate, "jitter_ms": point.jitter_ms,
            "latency_min_ms": point.latency_min_ms,
            "latency_median_ms": point.latency_median_ms,
            "latency_p95_ms": point.latency_p95_ms, "latency_max_ms": point.latency_max_ms,
            "sent": point.sent, "received": point.received, "error": point.error}


def _mean(values: list) -> float | None:
    return sum(values) / len(values) if values else None


def _present(group: Iterable[dict], name: str) -> list:
    return [p[name] for p in group if p.get(name) is not None]


def _sum(group: list[dict], name: str) -> int | None:
    values = _present(group, name)
    return sum(values) if values else None


def fold(points: Iterable[dict], bucket_ms: int = MINUTE_MS) -> dict[int, dict]:
    """Raw-shaped points aggregated per bucket, as `aggregation` does per minute in SQL."""
    buckets: dict[int, list[dict]] = defaultdict(list)
    for p in points:
        buckets[p["ts_ms"] - p["ts_ms"] % bucket_ms].append(p)
    result = {}
    for ts, group in buckets.items():
        latencies = _present(group, "latency_ms")
        lows = [p["latency_min_ms"] if p.get("latency_min_ms") is not None else p["latency_ms"]
                for p in group if p["latency_ms"] is not None]
        highs = [p["latency_max_ms"] if p.get("latency_max_ms") is not None
                 else p["latency_ms"] for p in group if p["latency_ms"] is not None]
        jitters = _present(group, "jitter_ms")
        losses = [p["packet_loss_rate"] for p in group]
        result[ts] = {
            "ts_ms": ts, "latency_ms": _mean(latencies), "packet_loss_rate": _mean(losses),
            "jitter_ms": _mean(jitters), "latency_min_ms": min(lows, default=None),
            "latency_median_ms": _mean(_present(group, "latency_median_ms")),
            "latency_p95_ms": _mean(_present(group, "latency_p95_ms")),
            "latency_max_ms": max(highs, default=None), "sent": _sum(group, "sent"),
            "received": _sum(group, "received"), "jitter_max_ms": max(jitters, default=None),
            "packet_loss_max": max(losses), "sample_count": len(group),
            LATENCY_RUNS: len(latencies), COMPUTED: True,
        }
    return result


def latency_runs(point: dict) -> int:
    """How many runs a point's latency means stand for: counted when it was computed here,
    else (a stored minute or rollup) its runs when it has a latency at all."""
    runs = point.get(LATENCY_RUNS)
    if runs is not None:
        return runs
    return (point.get("sample_count") or 0) if point.get("latency_ms") is not None else 0


def _weighted(group: list[dict], name: str, weight: str) -> float | None:
    pairs = [(p[name], latency_runs(p) if weight == LATENCY_RUNS else p.get(weight) or 0)
             for p in group if p.get(name) is not None]
    total = sum(w for _, w in pairs)
    if not total:
        return _mean([v for v, _ in pairs])
    return sum(v * w for v, w in pairs) / total


def rollup(points: Iterable[dict], bucket_ms: int) -> dict[int, dict]:
    """Aggregated points combined into larger buckets; means weighted by the runs behind
    them (latency by the runs that received something, loss by every run)."""
    buckets: dict[int, list[dict]] = defaultdict(list)
    for p in points:
        buckets[p["ts_ms"] - p["ts_ms"] % bucket_ms].append(p)
    result = {}
    for ts, group in buckets.items():
        runs_with_latency = sum(latency_runs(p) for p in group)
        result[ts] = {
            "ts_ms": ts,
            "latency_ms": _weighted(group, "latency_ms", LATENCY_RUNS),
            "packet_loss_rate": _weighted(group, "packet_loss_rate", "sample_count"),
            "jitter_ms": _weighted(group, "jitter_ms", LATENCY_RUNS),
            "latency_min_ms": min(_present(group, "latency_min_ms"), default=None),
            "latency_median_ms": _weighted(group, "latency_median_ms", LATENCY_RUNS),
            "latency_p95_ms": _weighted(group, "latency_p95_ms", LATENCY_RUNS),
            "latency_max_ms": max(_present(group, "latency_max_ms"), default=None),
            "sent": _sum(group, "sent"), "received": _sum(group, "received"),
            "jitter_max_ms": max(_present(group, "jitter_max_ms"), default=None),
            "packet_loss_max": max(_present(group, "packet_loss_max"), default=None),
            "sample_count": sum(p.get("sample_count") or 0 for p in group),
            LATENCY_RUNS: runs_with_latency, COMPUTED: True,
        }
    return result


def stored_mean(column, places: int):
    """avg(column) as the database stores it: PostgreSQL's numeric columns round it to
    their scale on insert; SQLite stores a float, so it is rounded there in the query."""
    mean = func.avg(column)
    return func.round(mean, places) if db.engine.dialect.name == "sqlite" else mean


def round_cents(value: float) -> float:
    """Half up to the cent, as PostgreSQL's numeric columns round (12.125 -> 12.13); the
    epsilon keeps a decimal tie that binary floats hold a hair under (1.005) a tie."""
    return math.floor(float(value) * 100 + 0.5 + 1e-7) / 100


def answered(point: dict) -> dict:
    """The point as answered: internal keys dropped, and values computed here (folds and
    rollups) rounded to 2 decimals. Stored values are already cents (numeric(10,2) columns,
    centi-unit members), so a stored point is answered as it is, without a copy."""
    if COMPUTED not in point and LATENCY_RUNS not in point:
        return point
    shown = {}
    computed = COMPUTED in point
    for name, value in point.items():
        if name.startswith("_"):
            continue
        if computed and name in ROUNDED and value is not None:
            value = round_cents(value)
        shown[name] = value
    return shown
