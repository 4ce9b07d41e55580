"""Baselines of `mode=baseline` rules: each probe's median of a metric over the previous 7
days, from the hourly rollups (`metric_rollups_hourly`, SPEC §12).

A probe with fewer than 24 hours of that metric is not evaluated. The medians of all
probes are computed by one query per metric, at most once an hour, and cached in Redis
for every worker (the hash carries when it was computed).
"""

from __future__ import annotations

import logging
import statistics
from datetime import datetime, timedelta

import sqlalchemy.exc
from sqlalchemy import text

from app.extensions import db, get_redis
from app.timeutil import to_ms

log = logging.getLogger(__name__)
WINDOW = timedelta(days=7)
MIN_HOURS = 24
REFRESH = timedelta(hours=1)
# The rollup column holding each metric's hourly value (the hour's mean; for p95 the mean
# of the runs' p95s), as SPEC §12 names them.
COLUMNS = {"latency_ms": "latency_ms", "latency_p95_ms": "latency_p95_ms",
           "jitter_ms": "jitter_ms"}
_COMPUTED_AT = "_computed_at_ms"

_PG_SQL = """
SELECT probe_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY {column}) AS median
FROM metric_rollups_hourly
WHERE hour >= :since AND hour < :until AND {column} IS NOT NULL
GROUP BY probe_id
HAVING count(*) >= :min_hours
"""
_PORTABLE_SQL = """
SELECT probe_id, {column} FROM metric_rollups_hourly
WHERE hour >= :since AND hour < :until AND {column} IS NOT NULL
"""


def _cache_key(prefix: str, metric: str) -> str:
    return f"{prefix}:alerts:baseline:{metric}"


def query_medians(metric: str, now: datetime) -> dict[str, float]:
    """probe id -> median of `metric`'s hourly values over the 7 days before `now`'s hour,
    for probes with at least 24 such hours. {} when the rollups table is not there."""
    column = COLUMNS[metric]
    until = now.replace(minute=0, second=0, microsecond=0)
    params = {"since": until - WINDOW, "until": until, "min_hours": MIN_HOURS}
    postgres = db.engine.dialect.name == "postgresql"
    sql = (_PG_SQL if postgres else _PORTABLE_SQL).format(column=column)
    try:
        with db.session.begin_nested():
            rows = db.session.execute(text(sql), params).all()
    except (sqlalchemy.exc.ProgrammingError, sqlalchemy.exc.OperationalError) as exc:
        log.warning("baseline rules not evaluated: the hourly rollups cannot be read (%s)",
                    type(exc).__name__)
        return {}
    if postgres:
        return {str(probe_id): float(median) for probe_id, median in rows}
    values: dict[str, list[float]] = {}
    for probe_id, value in rows:
        values.setdefault(str(probe_id), []).append(float(value))
    return {probe_id: statistics.median(v) for probe_id, v in values.items()
            if len(v) >= MIN_HOURS}


def medians(metric: str, now: datetime) -> dict[str, float]:
    """The cached medians of `metric`, recomputed when the cache is an hour old."""
    handle = get_redis()
    key = _cache_key(handle.prefix, metric)
    cached = handle.client.hgetall(key)
    computed_at = int(cached.pop(_COMPUTED_AT.encode(), b"0"))
    if cached or computed_at:
        age_ms = to_ms(now) - computed_at
        if 0 <= age_ms < REFRESH.total_seconds() * 1000:
            return {k.decode(): float(v) for k, v in cached.items()}
    fresh = query_medians(metric, now)
    pipe = handle.client.pipeline()
    pipe.delete(key)
    pipe.hset(key, mapping={_COMPUTED_AT: to_ms(now), **fresh})
    pipe.expire(key, int(REFRESH.total_seconds() * 2))
    pipe.execute()
    return fresh


def forget_cache() -> None:
    """Drop every cached baseline (tests; after a bulk import of history)."""
    handle = get_redis()
    for metric in COLUMNS:
        handle.client.delete(_cache_key(handle.prefix, metric))
