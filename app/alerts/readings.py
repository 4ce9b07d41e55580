"""The recent runs of many probes, read for evaluation without going through the API.

Inside the live hour the runs come from the live cache in Redis (what ingest wrote when
it answered 200: nothing waits for the flush or the minute aggregation), one pipelined
range read per probe. Minutes older than the live hour (rules with a long `for_minutes`)
come from the minute aggregates in PostgreSQL, one query for all probes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import select

from app.alerts.conditions import MINUTE_MS, Run
from app.extensions import db, get_redis
from app.history.live_cache import LIVE_WINDOW_MS, decode_member
from app.models import Metric
from app.redis_keys import live_key
from app.timeutil import from_ms, to_ms

PIPELINE_CHUNK = 2000


def reach_ms(interval_seconds: int, window_minutes: int) -> int:
    """How far back the runs of a window of minutes ending now can lie: the window, the
    current minute, and the carry reach of the probe's interval + 60 s."""
    return (window_minutes + 1) * MINUTE_MS + (interval_seconds + 60) * 1000


def recent_runs(probes: Sequence[tuple[str, str, int]], window_minutes: int,
                now: datetime) -> dict[str, list[Run]]:
    """(probe id, node id, interval) -> that probe's runs up to `now`, oldest first."""
    now_ms = to_ms(now)
    handle = get_redis()
    runs: dict[str, list[Run]] = {}
    for first in range(0, len(probes), PIPELINE_CHUNK):
        chunk = probes[first:first + PIPELINE_CHUNK]
        pipe = handle.client.pipeline(transaction=False)
        for probe_id, node_id, interval in chunk:
            low = max(now_ms - reach_ms(interval, window_minutes), now_ms - LIVE_WINDOW_MS)
            pipe.zrangebyscore(live_key(handle.prefix, node_id, probe_id), low, now_ms)
        for (probe_id, _node, _interval), members in zip(chunk, pipe.execute(), strict=True):
            runs[probe_id] = _decode(probe_id, members)
    older = [p for p in probes if reach_ms(p[2], window_minutes) > LIVE_WINDOW_MS]
    if older:
        _add_stored_minutes(runs, older, window_minutes, now_ms)
    return runs


def _decode(probe_id: str, members: Iterable[bytes]) -> list[Run]:
    by_ts: dict[int, Run] = {}
    for member in members:
        p = decode_member(probe_id, member)
        # One point per instant, as the live cache's own reads keep.
        by_ts.setdefault(p.ts_ms, Run(p.ts_ms, p.latency_ms, p.latency_p95_ms,
                                      p.packet_loss_rate, p.jitter_ms))
    return [by_ts[ts] for ts in sorted(by_ts)]


def _add_stored_minutes(runs: dict[str, list[Run]], probes: Sequence[tuple[str, str, int]],
                        window_minutes: int, now_ms: int) -> None:
    """Minute aggregates before the live hour, stamped at their minute's start."""
    live_start = now_ms - LIVE_WINDOW_MS
    low = now_ms - max(reach_ms(p[2], window_minutes) for p in probes)
    ids = [uuid.UUID(p[0]) for p in probes]
    rows = db.session.execute(
        select(Metric.probe_id, Metric.timestamp, Metric.latency_ms, Metric.latency_p95_ms,
               Metric.packet_loss_rate, Metric.jitter_ms)
        .where(Metric.is_aggregated.is_(True), Metric.probe_id.in_(ids),
               Metric.timestamp >= from_ms(low), Metric.timestamp < from_ms(live_start))
        .order_by(Metric.timestamp))
    stored: dict[str, list[Run]] = {}
    for probe_id, ts, latency, p95, loss, jitter in rows:
        stored.setdefault(str(probe_id), []).append(Run(
            to_ms(ts), _num(latency), _num(p95), _num(loss) or 0.0, _num(jitter)))
    for probe_id, older in stored.items():
        runs[probe_id] = [*older, *runs.get(probe_id, [])]


def _num(value) -> float | None:
    return None if value is None else float(value)


def latest_runs(probes: Sequence[tuple[str, str, int]], now: datetime) -> dict[str, Run | None]:
    """Each probe's latest run in the live hour: the bare read the benchmark compares with."""
    now_ms = to_ms(now)
    handle = get_redis()
    latest: dict[str, Run | None] = {}
    for first in range(0, len(probes), PIPELINE_CHUNK):
        chunk = probes[first:first + PIPELINE_CHUNK]
        pipe = handle.client.pipeline(transaction=False)
        for probe_id, node_id, _interval in chunk:
            pipe.zrevrangebyscore(live_key(handle.prefix, node_id, probe_id), now_ms,
                                  now_ms - MINUTE_MS, start=0, num=1)
        for (probe_id, _node, _interval), members in zip(chunk, pipe.execute(), strict=True):
            decoded = _decode(probe_id, members)
            latest[probe_id] = decoded[-1] if decoded else None
    return latest
