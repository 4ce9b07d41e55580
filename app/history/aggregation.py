"""Minute aggregation with catch-up.

The flush marks every (probe, minute) whose raw rows it committed in a Redis sorted set
(member `probe_id:minute_ms`, score = when marked). The aggregate task recomputes each
marked minute once it is complete, from the persisted raw rows, and upserts its
`is_aggregated` row (ON CONFLICT … DO UPDATE), so late and back-filled points are
reflected and running it twice changes nothing. A mark is removed only if it was not
renewed while the minute was being computed (WATCH on the set), so nothing is missed.

Marks live in Redis, which can lose them (a restart without AOF; embedded mode's
in-process Redis on every restart). So each run also asks the database which recent
minutes have raw rows without an aggregate, or rows stored after it, and after Redis lost
its data (a watermark key gone) it asks that for the whole raw retention once.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import and_, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.extensions import db, get_redis
from app.history.marks import unmark
from app.history.points import stored_mean
from app.history.rollups import mark_hours_dirty, roll_up_pending_hours
from app.models import Metric
from app.redis_keys import agg_alive_key, agg_dirty_key
from app.timeutil import MINUTE_MS, from_ms, to_ms

log = logging.getLogger(__name__)
MAX_MINUTES_PER_RUN = 20_000
# Minutes re-checked against the database on every run, marks or not: what a lost mark
# (a Redis that lost its last writes) would otherwise leave unaggregated.
CATCH_UP_RECENT = timedelta(minutes=10)


def minute_start_ms(ts_ms: int) -> int:
    return ts_ms - ts_ms % MINUTE_MS


def mark_minutes_dirty(points: set[tuple[str, int]], pipe=None) -> None:
    """Mark the minutes of (probe_id, ts_ms) points as needing (re)aggregation.

    With `pipe`, the mark is queued there (the flush sends it with its acknowledgement).
    """
    if not points:
        return
    handle = get_redis()
    now_ms = int(time.time() * 1000)
    members = {f"{probe_id}:{minute_start_ms(ts)}": now_ms for probe_id, ts in points}
    (pipe if pipe is not None else handle.client).zadd(agg_dirty_key(handle.prefix), members)


def _aggregate_statement(probe_id: uuid.UUID, start: datetime):
    """The minute's figures from its raw rows. Latency means and the spread are over the
    runs that received something (SQL's avg/min/max skip nulls), loss over every run; a run
    without a reported min/max counts with its mean."""
    end = start + timedelta(minutes=1)
    raw = Metric.__table__
    columns = select(
        raw.c.node_id,
        stored_mean(raw.c.latency_ms, 2).label("latency_ms"),
        stored_mean(raw.c.packet_loss_rate, 4).label("packet_loss_rate"),
        stored_mean(raw.c.jitter_ms, 2).label("jitter_ms"),
        func.min(func.coalesce(raw.c.latency_min_ms, raw.c.latency_ms)).label("latency_min_ms"),
        stored_mean(raw.c.latency_median_ms, 2).label("latency_median_ms"),
        stored_mean(raw.c.latency_p95_ms, 2).label("latency_p95_ms"),
        func.max(func.coalesce(raw.c.latency_max_ms, raw.c.latency_ms)).label("latency_max_ms"),
        func.max(raw.c.jitter_ms).label("jitter_max_ms"),
        func.max(raw.c.packet_loss_rate).label("packet_loss_max"),
        func.sum(raw.c.sent).label("sent"),
        func.sum(raw.c.received).label("received"),
        func.count().label("sample_count"),
    ).where(and_(raw.c.probe_id == probe_id, raw.c.is_aggregated.is_(False),
                 raw.c.timestamp >= start, raw.c.timestamp < end)
            ).group_by(raw.c.node_id)
    return columns


def aggregate_minute(probe_id: uuid.UUID, start: datetime) -> bool:
    """Recompute one (probe, minute) aggregate from its raw rows; False if it has none."""
    row = db.session.execute(_aggregate_statement(probe_id, start)).mappings().first()
    if row is None:
        return False
    values = {**row, "probe_id": probe_id, "timestamp": start, "is_aggregated": True,
              "created_at": datetime.now(UTC)}
    insert = pg_insert if db.engine.dialect.name == "postgresql" else sqlite_insert
    statement = insert(Metric).values(**values)
    updated = {k: statement.excluded[k] for k in values
               if k not in ("probe_id", "timestamp", "is_aggregated")}
    statement = statement.on_conflict_do_update(
        index_elements=["probe_id", "timestamp", "is_aggregated"], set_=updated)
    db.session.execute(statement)
    return True


# PostgreSQL: many minutes in one statement (a Pulse of 10,000 probes aggregates ~10,000
# minutes a minute: one statement per minute would be 20,000 round trips).
_BATCH_SQL = """
INSERT INTO metrics (node_id, probe_id, timestamp, is_aggregated, latency_ms,
    packet_loss_rate, jitter_ms, latency_min_ms, latency_median_ms, latency_p95_ms,
    latency_max_ms, jitter_max_ms, packet_loss_max, sent, received, sample_count, created_at)
SELECT r.node_id, r.probe_id, d.minute, true, avg(r.latency_ms), avg(r.packet_loss_rate),
    avg(r.jitter_ms), min(coalesce(r.latency_min_ms, r.latency_ms)), avg(r.latency_median_ms),
    avg(r.latency_p95_ms), max(coalesce(r.latency_max_ms, r.latency_ms)), max(r.jitter_ms),
    max(r.packet_loss_rate), sum(r.sent), sum(r.received), count(*), now()
FROM unnest(CAST(:probes AS uuid[]), CAST(:minutes AS timestamptz[])) AS d(probe_id, minute)
JOIN metrics r ON r.probe_id = d.probe_id AND r.is_aggregated = false
    AND r.timestamp >= d.minute AND r.timestamp < d.minute + interval '1 minute'
GROUP BY r.node_id, r.probe_id, d.minute
ON CONFLICT (probe_id, timestamp, is_aggregated) DO UPDATE SET
    node_id = EXCLUDED.node_id, latency_ms = EXCLUDED.latency_ms,
    packet_loss_rate = EXCLUDED.packet_loss_rate, jitter_ms = EXCLUDED.jitter_ms,
    latency_min_ms = EXCLUDED.latency_min_ms, latency_median_ms = EXCLUDED.latency_median_ms,
    latency_p95_ms = EXCLUDED.latency_p95_ms, latency_max_ms = EXCLUDED.latency_max_ms,
    jitter_max_ms = EXCLUDED.jitter_max_ms, packet_loss_max = EXCLUDED.packet_loss_max,
    sent = EXCLUDED.sent, received = EXCLUDED.received, sample_count = EXCLUDED.sample_count,
    created_at = EXCLUDED.created_at
"""
BATCH_MINUTES = 1000


def aggregate_minutes(pairs: list[tuple[uuid.UUID, int]]) -> None:
    """Recompute the aggregates of these (probe, minute ms), committing as it goes; the
    same figures as aggregate_minute (a test holds the two together)."""
    if db.engine.dialect.name != "postgresql":
        for count, (probe_id, minute_ms) in enumerate(pairs, 1):
            aggregate_minute(probe_id, from_ms(minute_ms))
            if count % 500 == 0:
                db.session.commit()
        db.session.commit()
        return
    for start in range(0, len(pairs), BATCH_MINUTES):
        chunk = pairs[start:start + BATCH_MINUTES]
        db.session.execute(text(_BATCH_SQL), {
            "probes": [str(p) for p, _ in chunk],
            "minutes": [from_ms(m) for _, m in chunk]})
        db.session.commit()


def aggregate_pending_minutes(now: datetime | None = None) -> int:
    """Aggregate every complete minute marked since its aggregate was written, and every
    minute whose persisted raw rows say it needs it though no mark does (catch-up)."""
    handle = get_redis()
    client, key = handle.client, agg_dirty_key(handle.prefix)
    now = now or datetime.now(UTC)
    current_minute = minute_start_ms(to_ms(now))
    marks = client.zrange(key, 0, MAX_MINUTES_PER_RUN - 1, withscores=True)
    done: dict[bytes, float] = {}
    todo: set[tuple[uuid.UUID, int]] = set()
    for member, score in marks:
        probe_text, minute_text = member.decode().rsplit(":", 1)
        minute_ms = int(minute_text)
        if minute_ms >= current_minute:
            continue  # not complete yet
        todo.add((uuid.UUID(probe_text), minute_ms))
        done[member] = score
    stale, full = _unmarked_stale_minutes(client, handle.prefix, from_ms(current_minute))
    todo |= stale
    # Marked before and after: while a changed minute is being written, charts read its
    # hour from the rows, not from the packed block (app.history.blocks); the mark after renews
    # it for a roll-up that ran meanwhile.
    mark_hours_dirty(todo)
    aggregate_minutes(sorted(todo))
    mark_hours_dirty(todo)
    unmark(client, key, done)
    roll_up_pending_hours(now, full_scan=full)
    if full and len(stale) < MAX_MINUTES_PER_RUN:
        client.set(agg_alive_key(handle.prefix), 1)
    return len(todo)


def _unmarked_stale_minutes(client, prefix: str,
                            until: datetime) -> tuple[set[tuple[uuid.UUID, int]], bool]:
    """Minutes the marks may have missed: the recent ones always; after Redis lost its data
    (the watermark key is gone: a restart without AOF, or embedded mode's in-process Redis)
    every minute within the raw retention, until one scan comes back complete."""
    full = not client.exists(agg_alive_key(prefix))
    since = until - (timedelta(days=current_app.config["PULSE_RAW_RETENTION_DAYS"]) if full
                     else CATCH_UP_RECENT)
    return stale_minutes(since, until, MAX_MINUTES_PER_RUN), full


def stale_minutes(since: datetime, until: datetime,
                  limit: int = MAX_MINUTES_PER_RUN) -> set[tuple[uuid.UUID, int]]:
    """(probe, minute ms) in [since, until) with raw rows and no aggregate, or raw rows
    stored after their aggregate was computed."""
    if db.engine.dialect.name == "postgresql":
        rows = db.session.execute(text(_STALE_SQL), {"since": since, "until": until,
                                                     "limit": limit})
        return {(row.probe_id, to_ms(row.minute)) for row in rows}
    raw = Metric.__table__
    newest: dict[tuple[uuid.UUID, int], datetime] = {}
    for probe_id, ts, created in db.session.execute(
            select(raw.c.probe_id, raw.c.timestamp, raw.c.created_at).where(
                raw.c.is_aggregated.is_(False), raw.c.timestamp >= since,
                raw.c.timestamp < until)):
        key = (probe_id, minute_start_ms(to_ms(ts)))
        newest[key] = max(newest.get(key, created), created, key=_aware)
    computed = {(probe_id, to_ms(ts)): created for probe_id, ts, created in db.session.execute(
        select(raw.c.probe_id, raw.c.timestamp, raw.c.created_at).where(
            raw.c.is_aggregated.is_(True), raw.c.timestamp >= since, raw.c.timestamp < until))}
    stale = {key for key, created in newest.items()
             if key not in computed or _aware(created) > _aware(computed[key])}
    return set(sorted(stale)[:limit])


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


_STALE_SQL = """
SELECT r.probe_id, r.minute FROM (
    SELECT probe_id, date_trunc('minute', timestamp) AS minute, max(created_at) AS newest
    FROM metrics
    WHERE is_aggregated = false AND timestamp >= :since AND timestamp < :until
    GROUP BY 1, 2
) r
LEFT JOIN metrics a
    ON a.is_aggregated = true AND a.probe_id = r.probe_id AND a.timestamp = r.minute
WHERE a.id IS NULL OR r.newest > a.created_at
ORDER BY r.minute
LIMIT :limit
"""
