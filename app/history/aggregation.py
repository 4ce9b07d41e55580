"""Minute aggregation with catch-up.

The flush marks every (probe, minute) whose raw rows it committed in a Redis sorted set
(member `probe_id:minute_ms`, score = when marked). The aggregate task recomputes each
marked minute once it is complete, from the persisted raw rows, and upserts its
`is_aggregated` row (ON CONFLICT … DO UPDATE), so late and back-filled points are
reflected and running it twice changes nothing. A mark is removed only if it was not
renewed while the minute was being computed (WATCH on the set), so nothing is missed.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime, timedelta

import redis
from sqlalchemy import and_, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.extensions import db, get_redis
from app.models import Metric
from app.redis_keys import agg_dirty_key

log = logging.getLogger(__name__)
MINUTE_MS = 60_000
MAX_MINUTES_PER_RUN = 20_000


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
    end = start + timedelta(minutes=1)
    raw = Metric.__table__
    columns = select(
        raw.c.node_id,
        raw.c.probe_id,
        func.avg(raw.c.latency_ms),
        func.avg(raw.c.packet_loss_rate),
        func.avg(raw.c.jitter_ms),
        func.min(raw.c.latency_ms),
        func.max(raw.c.latency_ms),
        func.max(raw.c.jitter_ms),
        func.max(raw.c.packet_loss_rate),
        func.count(),
    ).where(and_(raw.c.probe_id == probe_id, raw.c.is_aggregated.is_(False),
                 raw.c.timestamp >= start, raw.c.timestamp < end)
            ).group_by(raw.c.node_id, raw.c.probe_id)
    return columns, end


def aggregate_minute(probe_id: uuid.UUID, start: datetime) -> bool:
    """Recompute one (probe, minute) aggregate from its raw rows; False if it has none."""
    query, _end = _aggregate_statement(probe_id, start)
    row = db.session.execute(query).first()
    if row is None:
        return False
    node_id, _probe, lat, loss, jit, lat_min, lat_max, jit_max, loss_max, count = row
    values = {
        "node_id": node_id, "probe_id": probe_id, "timestamp": start, "is_aggregated": True,
        "latency_ms": lat, "packet_loss_rate": loss, "jitter_ms": jit,
        "latency_min_ms": lat_min, "latency_max_ms": lat_max, "jitter_max_ms": jit_max,
        "packet_loss_max": loss_max, "sample_count": count, "created_at": datetime.now(UTC),
    }
    insert = pg_insert if db.engine.dialect.name == "postgresql" else sqlite_insert
    statement = insert(Metric).values(**values)
    updated = {k: statement.excluded[k] for k in values
               if k not in ("probe_id", "timestamp", "is_aggregated", "created_at")}
    statement = statement.on_conflict_do_update(
        index_elements=["probe_id", "timestamp", "is_aggregated"], set_=updated)
    db.session.execute(statement)
    return True


def aggregate_pending_minutes(now: datetime | None = None) -> int:
    """Aggregate every complete minute marked since its aggregate was written."""
    handle = get_redis()
    client, key = handle.client, agg_dirty_key(handle.prefix)
    now_ms = int((now or datetime.now(UTC)).timestamp() * 1000)
    current_minute = minute_start_ms(now_ms)
    marks = client.zrange(key, 0, MAX_MINUTES_PER_RUN - 1, withscores=True)
    done: dict[bytes, float] = {}
    for member, score in marks:
        probe_text, minute_text = member.decode().rsplit(":", 1)
        minute_ms = int(minute_text)
        if minute_ms >= current_minute:
            continue  # not complete yet
        start = datetime.fromtimestamp(minute_ms / 1000, UTC)
        aggregate_minute(uuid.UUID(probe_text), start)
        done[member] = score
        if len(done) % 500 == 0:
            db.session.commit()
    db.session.commit()
    _unmark(client, key, done)
    return len(done)


def _unmark(client, key: str, done: dict[bytes, float]) -> None:
    """Remove marks that were not renewed meanwhile (compare-and-delete under WATCH)."""
    if not done:
        return
    members = list(done)
    for _attempt in range(10):
        with client.pipeline() as pipe:
            try:
                pipe.watch(key)
                scores = pipe.zmscore(key, members)
                stale = [m for m, s in zip(members, scores, strict=True)
                         if s is not None and s == done[m]]
                pipe.multi()
                if stale:
                    pipe.zrem(key, *stale)
                pipe.execute()
                return
            except redis.WatchError:
                continue
    log.warning("aggregation marks kept after contention; they are recomputed next run")
