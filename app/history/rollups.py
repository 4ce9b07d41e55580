"""Hourly rollups (SPEC §12): one row per probe and hour, kept two years by default, so a
two-year chart is one query of at most 17,520 rows per probe.

An hour is rolled up from its raw runs once all its minutes are complete and aggregated,
and again whenever one of its minutes is re-aggregated (a late or back-filled point):
aggregation marks the hour (a Redis sorted set, like the minute marks). Marks can be lost
with Redis, so each run also asks the database which recent hours have minute aggregates
newer than their rollup (all of the raw retention after Redis lost its data). On
PostgreSQL the same transaction packs the hour's minutes and the day's rollups for charts
(app.history.blocks).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import and_, case, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.extensions import db, get_redis
from app.history import blocks
from app.history.marks import unmark
from app.history.points import stored_mean
from app.models import Metric, MetricRollup
from app.redis_keys import rollup_dirty_key
from app.timeutil import HOUR_MS, MINUTE_MS, from_ms, to_ms

MAX_HOURS_PER_RUN = 20_000
CATCH_UP_RECENT = timedelta(hours=3)
CATCH_UP_MINUTES = (2, 3)


def hour_start_ms(ts_ms: int) -> int:
    return ts_ms - ts_ms % HOUR_MS


def mark_hours_dirty(minutes: set[tuple[uuid.UUID, int]]) -> None:
    """Mark the hours of (probe_id, minute ms) as needing their rollup (re)computed."""
    if not minutes:
        return
    handle = get_redis()
    now_ms = int(time.time() * 1000)
    members = {f"{probe}:{hour_start_ms(minute)}": now_ms for probe, minute in minutes}
    handle.client.zadd(rollup_dirty_key(handle.prefix), members)


def _rollup_values(probe_id: uuid.UUID, hour: datetime) -> dict | None:
    raw = Metric.__table__
    row = db.session.execute(select(
        raw.c.node_id,
        stored_mean(raw.c.latency_ms, 2).label("latency_ms"),
        func.min(func.coalesce(raw.c.latency_min_ms, raw.c.latency_ms)).label("latency_min_ms"),
        func.max(func.coalesce(raw.c.latency_max_ms, raw.c.latency_ms)).label("latency_max_ms"),
        stored_mean(raw.c.latency_median_ms, 2).label("latency_median_ms"),
        stored_mean(raw.c.latency_p95_ms, 2).label("latency_p95_ms"),
        stored_mean(raw.c.packet_loss_rate, 4).label("packet_loss_rate"),
        func.max(raw.c.packet_loss_rate).label("packet_loss_max"),
        stored_mean(raw.c.jitter_ms, 2).label("jitter_ms"),
        func.max(raw.c.jitter_ms).label("jitter_max_ms"),
        func.count().label("sample_count"),
        func.count(raw.c.latency_ms).label("latency_sample_count"),
        func.sum(case((raw.c.packet_loss_rate < 100, 1), else_=0)).label("runs_available"),
    ).where(and_(raw.c.probe_id == probe_id, raw.c.is_aggregated.is_(False),
                 raw.c.timestamp >= hour, raw.c.timestamp < hour + timedelta(hours=1)))
        .group_by(raw.c.node_id)).mappings().first()
    return dict(row) if row else None


def roll_up_hour(probe_id: uuid.UUID, hour: datetime) -> bool:
    """(Re)compute one probe's hour from its raw runs; False when it has none (then a
    rollup computed while they existed stays)."""
    values = _rollup_values(probe_id, hour)
    if values is None:
        return False
    values.update(probe_id=probe_id, hour=hour, created_at=datetime.now(UTC))
    insert = pg_insert if db.engine.dialect.name == "postgresql" else sqlite_insert
    statement = insert(MetricRollup).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=["probe_id", "hour"],
        set_={k: statement.excluded[k] for k in values if k not in ("probe_id", "hour")})
    db.session.execute(statement)
    if db.engine.dialect.name == "postgresql":
        _pack([(probe_id, to_ms(hour))])
    return True


def _pack(pairs: list[tuple[uuid.UUID, int]]) -> None:
    """Pack the rolled-up hours' minutes and their days' rollups (app.history.blocks), in
    the rollups' transaction: blocks and rows change together."""
    blocks.write(blocks.MINUTES, [(probe, from_ms(hour)) for probe, hour in pairs])
    days = sorted({(probe, blocks.HOURS.period_of(hour)) for probe, hour in pairs})
    blocks.write(blocks.HOURS, [(probe, from_ms(day)) for probe, day in days])


_BATCH_SQL = """
INSERT INTO metric_rollups_hourly (node_id, probe_id, hour, latency_ms, latency_min_ms,
    latency_max_ms, latency_median_ms, latency_p95_ms, packet_loss_rate, packet_loss_max,
    jitter_ms, jitter_max_ms, sample_count, latency_sample_count, runs_available, created_at)
SELECT r.node_id, r.probe_id, d.hour, avg(r.latency_ms),
    min(coalesce(r.latency_min_ms, r.latency_ms)), max(coalesce(r.latency_max_ms, r.latency_ms)),
    avg(r.latency_median_ms), avg(r.latency_p95_ms), avg(r.packet_loss_rate),
    max(r.packet_loss_rate), avg(r.jitter_ms), max(r.jitter_ms), count(*), count(r.latency_ms),
    count(*) FILTER (WHERE r.packet_loss_rate < 100), now()
FROM unnest(CAST(:probes AS uuid[]), CAST(:hours AS timestamptz[])) AS d(probe_id, hour)
JOIN metrics r ON r.probe_id = d.probe_id AND r.is_aggregated = false
    AND r.timestamp >= d.hour AND r.timestamp < d.hour + interval '1 hour'
GROUP BY r.node_id, r.probe_id, d.hour
ON CONFLICT (probe_id, hour) DO UPDATE SET
    node_id = EXCLUDED.node_id, latency_ms = EXCLUDED.latency_ms,
    latency_min_ms = EXCLUDED.latency_min_ms, latency_max_ms = EXCLUDED.latency_max_ms,
    latency_median_ms = EXCLUDED.latency_median_ms, latency_p95_ms = EXCLUDED.latency_p95_ms,
    packet_loss_rate = EXCLUDED.packet_loss_rate, packet_loss_max = EXCLUDED.packet_loss_max,
    jitter_ms = EXCLUDED.jitter_ms, jitter_max_ms = EXCLUDED.jitter_max_ms,
    sample_count = EXCLUDED.sample_count, latency_sample_count = EXCLUDED.latency_sample_count,
    runs_available = EXCLUDED.runs_available, created_at = EXCLUDED.created_at
"""
BATCH_HOURS = 500


def roll_up_hours(pairs: list[tuple[uuid.UUID, int]]) -> None:
    """(Re)compute the rollups of these (probe, hour ms), committing as it goes; the same
    figures as roll_up_hour (a test holds the two together)."""
    if db.engine.dialect.name != "postgresql":
        for count, (probe_id, hour_ms) in enumerate(pairs, 1):
            roll_up_hour(probe_id, from_ms(hour_ms))
            if count % 500 == 0:
                db.session.commit()
        db.session.commit()
        return
    for start in range(0, len(pairs), BATCH_HOURS):
        chunk = pairs[start:start + BATCH_HOURS]
        db.session.execute(text(_BATCH_SQL), {"probes": [str(p) for p, _ in chunk],
                                              "hours": [from_ms(h) for _, h in chunk]})
        _pack(chunk)
        db.session.commit()


def roll_up_pending_hours(now: datetime | None = None, full_scan: bool = False) -> int:
    """Roll up every complete hour that was marked, or that the database says needs it."""
    handle = get_redis()
    client, key = handle.client, rollup_dirty_key(handle.prefix)
    now = now or datetime.now(UTC)
    now_ms = to_ms(now)
    complete_before = now_ms - now_ms % MINUTE_MS  # every minute before this one is complete
    todo: set[tuple[uuid.UUID, int]] = set()
    done: dict[bytes, float] = {}
    for member, score in client.zrange(key, 0, MAX_HOURS_PER_RUN - 1, withscores=True):
        probe_text, hour_text = member.decode().rsplit(":", 1)
        if int(hour_text) + HOUR_MS > complete_before:
            continue  # the hour is still open
        todo.add((uuid.UUID(probe_text), int(hour_text)))
        done[member] = score
    # The database is asked twice an hour, just after an hour closes (the scan reads every
    # minute aggregate of the window); the marks carry everything in between.
    since = None
    if full_scan:
        since = now - timedelta(days=current_app.config["PULSE_RAW_RETENTION_DAYS"])
    elif now.minute in CATCH_UP_MINUTES:
        since = now - CATCH_UP_RECENT
    if since is not None:
        todo |= stale_hours(since, from_ms(complete_before - complete_before % HOUR_MS))
    roll_up_hours(sorted(todo))
    unmark(client, key, done)  # marks renewed meanwhile stay
    return len(todo)


_STALE_SQL = """
SELECT a.probe_id, a.hour FROM (
    SELECT probe_id, date_trunc('hour', timestamp) AS hour, max(created_at) AS newest
    FROM metrics
    WHERE is_aggregated = true AND timestamp >= :since AND timestamp < :until
    GROUP BY 1, 2
) a
LEFT JOIN metric_rollups_hourly r ON r.probe_id = a.probe_id AND r.hour = a.hour
WHERE r.id IS NULL OR a.newest > r.created_at
ORDER BY a.hour
LIMIT :limit
"""


def stale_hours(since: datetime, until: datetime,
                limit: int = MAX_HOURS_PER_RUN) -> set[tuple[uuid.UUID, int]]:
    """(probe, hour ms) of complete hours in [since, until) whose minute aggregates are newer
    than their rollup, or that have none."""
    since = from_ms(hour_start_ms(to_ms(since)))
    if db.engine.dialect.name == "postgresql":
        rows = db.session.execute(text(_STALE_SQL), {"since": since, "until": until,
                                                     "limit": limit})
        return {(row.probe_id, to_ms(row.hour)) for row in rows}
    agg = Metric.__table__
    newest: dict[tuple[uuid.UUID, int], int] = {}
    for probe_id, ts, created in db.session.execute(select(
            agg.c.probe_id, agg.c.timestamp, agg.c.created_at).where(
            agg.c.is_aggregated.is_(True), agg.c.timestamp >= since, agg.c.timestamp < until)):
        key = (probe_id, hour_start_ms(to_ms(ts)))
        newest[key] = max(newest.get(key, 0), to_ms(created))
    rolled = {(r.probe_id, to_ms(r.hour)): to_ms(r.created_at) for r in db.session.execute(
        select(MetricRollup.probe_id, MetricRollup.hour, MetricRollup.created_at).where(
            MetricRollup.hour >= since, MetricRollup.hour < until))}
    stale = {k for k, created in newest.items() if k not in rolled or created > rolled[k]}
    return set(sorted(stale, key=lambda k: k[1])[:limit])
