"""Reading metrics back: the live hour from Redis, older ranges from the database.

Both sources are read for the part of the range they can hold and merged by timestamp
(one point per instant), so a range spanning the boundary has neither gaps nor doubles.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from app.extensions import db, get_redis
from app.history import live_cache
from app.history.live_cache import LIVE_WINDOW_MS, NODE_SERIES, Point
from app.models import Metric, Probe
from app.timeutil import from_ms, to_ms

AGG_FIELDS = ("latency_min_ms", "latency_max_ms", "jitter_max_ms", "packet_loss_max",
              "sample_count")
RAW_MAX = timedelta(hours=1)
MINUTE_MAX = timedelta(days=2)
MAX_POINTS = 50_000


def pick_resolution(resolution: str, start: datetime, end: datetime) -> str:
    if resolution != "auto":
        return resolution
    span = end - start
    if span <= RAW_MAX:
        return "raw"
    return "1m" if span <= MINUTE_MAX else "1h"


def _num(value) -> float | None:
    return None if value is None else float(value)


def _raw_point(ts_ms: int, latency, loss, jitter) -> dict:
    return {"ts_ms": ts_ms, "latency_ms": _num(latency), "packet_loss_rate": _num(loss),
            "jitter_ms": _num(jitter)}


def _live_points(node_id: uuid.UUID, series: str, start_ms: int, end_ms: int,
                 now_ms: int) -> list[Point]:
    handle = get_redis()
    return live_cache.read_series(handle.client, handle.prefix, str(node_id), series,
                                  start_ms, end_ms, now_ms)


def _db_rows(node_id, probe_id, start: datetime, end: datetime, aggregated: bool):
    query = select(Metric).where(
        Metric.node_id == node_id, Metric.is_aggregated.is_(aggregated),
        Metric.timestamp >= start, Metric.timestamp <= end,
    )
    if probe_id is not None:
        query = query.where(Metric.probe_id == probe_id)
    return db.session.scalars(query.order_by(Metric.timestamp).limit(MAX_POINTS)).all()


def _summarise(points_by_ts: dict[int, list[dict]]) -> dict[int, dict]:
    """Node summary from several probes' points at each instant (mean of each value)."""
    merged = {}
    for ts, points in points_by_ts.items():
        n = len(points)
        merged[ts] = _raw_point(ts, *(sum(p[k] or 0 for p in points) / n
                                      for k in ("latency_ms", "packet_loss_rate", "jitter_ms")))
    return merged


def raw_points(node_id, probe_id, start: datetime, end: datetime, now: datetime) -> list[dict]:
    start_ms, end_ms, now_ms = to_ms(start), to_ms(end), to_ms(now)
    live_from_ms = now_ms - LIVE_WINDOW_MS
    merged: dict[int, dict] = {}
    if probe_id is not None:
        # A probe's rows and its live points are the same points: read both, merged by
        # timestamp, so a point missing from either source is still shown.
        for r in _db_rows(node_id, probe_id, start, end, aggregated=False):
            ts = to_ms(r.timestamp)
            merged[ts] = _raw_point(ts, r.latency_ms, r.packet_loss_rate, r.jitter_ms)
    elif start_ms < live_from_ms:
        # The node summary of the live hour is what the Beacon reported (Redis); before
        # it, it is derived from the probe rows. Results carry their own timestamps, so
        # deriving inside the live hour too would add points beside the reported ones.
        db_end = min(end, from_ms(live_from_ms - 1))  # timestamps are ms-precise
        by_ts: dict[int, list[dict]] = defaultdict(list)
        for r in _db_rows(node_id, None, start, db_end, aggregated=False):
            by_ts[to_ms(r.timestamp)].append(
                _raw_point(0, r.latency_ms, r.packet_loss_rate, r.jitter_ms))
        merged.update(_summarise(by_ts))
    series = str(probe_id) if probe_id is not None else NODE_SERIES
    for p in _live_points(node_id, series, start_ms, end_ms, now_ms):
        merged[p.ts_ms] = _raw_point(p.ts_ms, p.latency_ms, p.packet_loss_rate, p.jitter_ms)
    return [merged[ts] for ts in sorted(merged)]


def _fold(points: list[dict], bucket_ms: int) -> dict[int, dict]:
    """Aggregate raw-shaped points into buckets, as aggregate_minute does in SQL."""
    buckets: dict[int, list[dict]] = defaultdict(list)
    for p in points:
        buckets[p["ts_ms"] - p["ts_ms"] % bucket_ms].append(p)
    result = {}
    for ts, group in buckets.items():
        lat = [p["latency_ms"] for p in group]
        loss = [p["packet_loss_rate"] for p in group]
        jit = [p["jitter_ms"] for p in group]
        result[ts] = {"ts_ms": ts, "latency_ms": sum(lat) / len(lat),
                      "packet_loss_rate": sum(loss) / len(loss), "jitter_ms": sum(jit) / len(jit),
                      "latency_min_ms": min(lat), "latency_max_ms": max(lat),
                      "jitter_max_ms": max(jit), "packet_loss_max": max(loss),
                      "sample_count": len(group)}
    return result


def _agg_point(r: Metric) -> dict:
    point = _raw_point(to_ms(r.timestamp), r.latency_ms, r.packet_loss_rate, r.jitter_ms)
    for name in AGG_FIELDS:
        point[name] = _num(getattr(r, name)) if name != "sample_count" else r.sample_count
    return point


def _rollup(points: list[dict], bucket_ms: int) -> dict[int, dict]:
    """Combine aggregated points into larger buckets, weighting means by sample count."""
    buckets: dict[int, list[dict]] = defaultdict(list)
    for p in points:
        buckets[p["ts_ms"] - p["ts_ms"] % bucket_ms].append(p)
    result = {}
    for ts, group in buckets.items():
        total = sum(p["sample_count"] or 0 for p in group) or 1
        result[ts] = {
            "ts_ms": ts,
            **{k: sum((p[k] or 0) * (p["sample_count"] or 0) for p in group) / total
               for k in ("latency_ms", "packet_loss_rate", "jitter_ms")},
            "latency_min_ms": min(p["latency_min_ms"] for p in group),
            "latency_max_ms": max(p["latency_max_ms"] for p in group),
            "jitter_max_ms": max(p["jitter_max_ms"] for p in group),
            "packet_loss_max": max(p["packet_loss_max"] for p in group),
            "sample_count": sum(p["sample_count"] or 0 for p in group),
        }
    return result


def aggregated_points(node_id, probe_id, start: datetime, end: datetime, now: datetime,
                      bucket_ms: int) -> list[dict]:
    """Minute (or hour) points: stored minute aggregates, and the live hour from Redis."""
    now_ms = to_ms(now)
    live_from_ms = now_ms - LIVE_WINDOW_MS
    live_from_ms -= live_from_ms % 60_000 - 60_000  # first whole minute inside the live hour
    minutes: dict[int, dict] = {}
    if probe_id is not None:
        for r in _db_rows(node_id, probe_id, start, end, aggregated=True):
            minutes[to_ms(r.timestamp)] = _agg_point(r)
        live = [_raw_point(p.ts_ms, p.latency_ms, p.packet_loss_rate, p.jitter_ms)
                for p in _live_points(node_id, str(probe_id), max(to_ms(start), live_from_ms),
                                      to_ms(end), now_ms)]
        minutes.update(_fold(live, 60_000))
    else:
        minutes.update(_fold(raw_points(node_id, None, start, end, now), 60_000))
    ordered = [minutes[ts] for ts in sorted(minutes)]
    if bucket_ms == 60_000:
        return ordered
    hours = _rollup(ordered, bucket_ms)
    return [hours[ts] for ts in sorted(hours)]


def node_metrics(node_id: uuid.UUID, probe_id: uuid.UUID | None, start: datetime,
                 end: datetime, resolution: str, now: datetime | None = None) -> dict:
    now = now or datetime.now(UTC)
    resolution = pick_resolution(resolution, start, end)
    if resolution == "raw":
        points = raw_points(node_id, probe_id, start, end, now)
    else:
        bucket = 60_000 if resolution == "1m" else 3_600_000
        points = aggregated_points(node_id, probe_id, start, end, now, bucket)
    return {"node_id": node_id, "probe_id": probe_id, "resolution": resolution,
            "points": points}


def node_live(node_id: uuid.UUID, now: datetime | None = None) -> dict:
    now_ms = to_ms(now or datetime.now(UTC))
    probe_ids = [str(p) for p in db.session.scalars(
        select(Probe.id).where(Probe.node_id == node_id).order_by(Probe.created_at))]
    handle = get_redis()
    series = live_cache.read_many(handle.client, handle.prefix, str(node_id),
                                  [NODE_SERIES, *probe_ids], now_ms)

    def shape(points: list[Point]) -> list[dict]:
        return [_raw_point(p.ts_ms, p.latency_ms, p.packet_loss_rate, p.jitter_ms)
                for p in points]

    return {"node_id": node_id, "summary": shape(series[NODE_SERIES]),
            "probes": [{"probe_id": pid, "points": shape(series[pid])} for pid in probe_ids]}


def latest_summaries(node_ids: list[str], now: datetime | None = None) -> dict[str, dict | None]:
    """Each node's newest summary point in the live hour, in one round trip."""
    handle = get_redis()
    pipe = handle.client.pipeline(transaction=False)
    for node_id in node_ids:
        pipe.zrange(live_cache.live_key(handle.prefix, node_id, NODE_SERIES), -1, -1)
    result = {}
    for node_id, members in zip(node_ids, pipe.execute(), strict=True):
        if members:
            p = live_cache.decode_member(NODE_SERIES, members[0])
            result[node_id] = {"latency_ms": p.latency_ms, "packet_loss_rate": p.packet_loss_rate,
                               "jitter_ms": p.jitter_ms}
        else:
            result[node_id] = None
    return result
