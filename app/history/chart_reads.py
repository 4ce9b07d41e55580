"""The node page's chart data: every probe of a node over a range, read for speed.

The same points as `queries.raw_points` / `queries.minute_points` (what the metrics API
answers; tests/dashboard compare the two), but the rows come back as plain column tuples
with the numeric columns cast to float in SQL, instead of ORM objects with Decimals: for
10 probes × 24 h of minutes (14,400 rows) that is most of the request's time.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Float, cast, select

from app.extensions import db, get_redis
from app.history import live_cache
from app.history.live_cache import LIVE_WINDOW_MS
from app.history.points import MINUTE_MS, fold, from_live, from_minute_row, from_raw_row
from app.history.queries import MAX_POINTS, RAW_MAX
from app.models import Metric
from app.timeutil import from_ms, to_ms

FLOATS = ("latency_ms", "packet_loss_rate", "jitter_ms", "latency_min_ms",
          "latency_median_ms", "latency_p95_ms", "latency_max_ms", "jitter_max_ms",
          "packet_loss_max")


def _rows(node_id, probe_ids: list, start: datetime, end: datetime, aggregated: bool):
    columns = [Metric.probe_id, Metric.timestamp, Metric.sent, Metric.received,
               Metric.error_code, Metric.sample_count,
               *(cast(getattr(Metric, name), Float).label(name) for name in FLOATS)]
    query = (select(*columns)
             .where(Metric.node_id == node_id, Metric.is_aggregated.is_(aggregated),
                    Metric.timestamp >= start, Metric.timestamp <= end,
                    Metric.probe_id.in_(probe_ids))
             .order_by(Metric.timestamp).limit(MAX_POINTS))
    return db.session.execute(query).all()


def raw_points(node_id, probe_ids: list, start: datetime, end: datetime,
               now: datetime) -> dict[str, list[dict]]:
    """As queries.raw_points."""
    merged: dict[str, dict[int, dict]] = {str(p): {} for p in probe_ids}
    for r in _rows(node_id, probe_ids, start, end, aggregated=False):
        ts = to_ms(r.timestamp)
        merged[str(r.probe_id)][ts] = from_raw_row(ts, r)
    start_ms, end_ms, now_ms = to_ms(start), to_ms(end), to_ms(now)
    if end_ms > now_ms - LIVE_WINDOW_MS:
        handle = get_redis()
        live = live_cache.read_many(handle.client, handle.prefix, str(node_id),
                                    list(merged), now_ms)
        for series, points in live.items():
            for p in points:
                if start_ms <= p.ts_ms <= end_ms:
                    merged[series][p.ts_ms] = from_live(p)
    return {series: [points[ts] for ts in sorted(points)] for series, points in merged.items()}


def minute_points(node_id, probe_ids: list, start: datetime, end: datetime,
                  now: datetime) -> dict[str, list[dict]]:
    """As queries.minute_points."""
    minutes: dict[str, dict[int, dict]] = {str(p): {} for p in probe_ids}
    for r in _rows(node_id, probe_ids, start, end, aggregated=True):
        ts = to_ms(r.timestamp)
        minutes[str(r.probe_id)][ts] = from_minute_row(ts, r)
    live_from = max(start, now - RAW_MAX - timedelta(minutes=1))
    if live_from <= end:
        first_minute = from_ms(to_ms(live_from) - to_ms(live_from) % MINUTE_MS)
        for series, runs in raw_points(node_id, probe_ids, first_minute, end, now).items():
            minutes[series].update(fold(runs))
    return {series: [points[ts] for ts in sorted(points)] for series, points in minutes.items()}
