"""Reading metrics back: the live hour from Redis, what is persisted from the database.

Both sources are read for every range and merged by timestamp (one point per instant):
the database may hold what Redis lost (a restart of embedded mode's in-process Redis) and
Redis holds what is not flushed yet, so a range has neither gaps nor doubles.

A node's own series: the summaries its Beacon reported (live hour, in Redis) and, for
every minute without one, the mean over its probes' minutes (node_series).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy import BigInteger, Float, String, cast, func, select

from app.extensions import db, get_redis
from app.history import live_cache
from app.history.live_cache import LIVE_WINDOW_MS, NODE_SERIES
from app.history.node_series import derived_minutes
from app.history.points import (
    COMPUTED,
    LATENCY_RUNS,
    MINUTE_MS,
    RAW_FIELDS,
    answered,
    fold,
    from_live,
    rollup,
)
from app.models import Metric, MetricRollup, Probe
from app.timeutil import HOUR_MS, from_ms, to_ms

RAW_MAX = timedelta(hours=1)
MINUTE_MAX = timedelta(days=2)
MAX_POINTS = 50_000
# The longest range a chart or the metrics API reads: two years of hourly rollups
# (PULSE_HOURLY_RETENTION_DAYS' default, 730, and a leap day) — 17,520 points a probe.
MAX_RANGE = timedelta(days=731)
REPORT_MARGIN_MS = 2 * MINUTE_MS


def pick_resolution(resolution: str, start: datetime, end: datetime) -> str:
    if resolution != "auto":
        return resolution
    span = end - start
    if span <= RAW_MAX:
        return "raw"
    return "1m" if span <= MINUTE_MAX else "1h"


def probe_info(probe: Probe) -> dict:
    """What anyone may see of a probe (viewers never see targets or ports)."""
    return {"name": probe.name, "type": probe.type, "label": probe.label}


# Rows are read as plain tuples of the answer's own types — floats cast in SQL, and on
# PostgreSQL the timestamp as epoch ms and the probe id as text — and zipped into dicts:
# ORM objects with Decimals, datetimes and UUIDs cost most of a chart's time (a node
# page's day is 14,400 minutes).
RAW_COLUMNS = ("latency_ms", "packet_loss_rate", "jitter_ms", "latency_min_ms",
               "latency_median_ms", "latency_p95_ms", "latency_max_ms")
AGG_COLUMNS = (*RAW_COLUMNS, "jitter_max_ms", "packet_loss_max")


def as_cents(column):
    """The column as a float of at most 2 decimals (loss is stored with 4): answered as
    read, with no rounding pass in Python. PostgreSQL's numeric(…, 2) columns hold cents
    already: cast only (the same float, for less of the server's CPU)."""
    if fast_dialect() and getattr(column.type, "scale", None) == 2:
        return cast(column, Float)
    return cast(func.round(column, 2), Float)


def fast_dialect() -> bool:
    """PostgreSQL: timestamps read as epoch ms and probe ids as text, in SQL."""
    return db.engine.dialect.name == "postgresql"


def key_columns(table, time_column) -> list:
    if fast_dialect():
        # date_part is float arithmetic (extract returns numeric): exact for ms stamps
        return [cast(table.probe_id, String),
                cast(func.date_part("epoch", time_column) * 1000, BigInteger)]
    return [table.probe_id, time_column]


def _as_points(rows, names: tuple[str, ...]) -> list[tuple[str, dict]]:
    fast = fast_dialect()
    points = []
    for row in rows:
        point = dict(zip(names, row[1:], strict=True))
        if not fast:
            point["ts_ms"] = to_ms(point["ts_ms"])
        points.append((row[0] if fast else str(row[0]), point))
    return points


def _rows(node_id, probe_ids: list, start: datetime, end: datetime,
          aggregated: bool) -> list[tuple[str, dict]]:
    """(probe id, point) of the metrics rows in [start, end], oldest first."""
    floats = AGG_COLUMNS if aggregated else RAW_COLUMNS
    extra = ((Metric.sent, Metric.received, Metric.sample_count) if aggregated
             else (Metric.sent, Metric.received, Metric.error_code))
    names = ("ts_ms", *floats, "sent", "received",
             "sample_count" if aggregated else "error")
    query = select(*key_columns(Metric, Metric.timestamp),
                   *(as_cents(getattr(Metric, n)) for n in floats), *extra).where(
        Metric.node_id == node_id, Metric.is_aggregated.is_(aggregated),
        Metric.timestamp >= start, Metric.timestamp <= end, Metric.probe_id.in_(probe_ids))
    points = _as_points(db.session.execute(
        query.order_by(Metric.timestamp).limit(MAX_POINTS)).all(), names)
    return points


def _rollup_rows(node_id, probe_ids: list, start: datetime,
                 end: datetime) -> list[tuple[str, dict]]:
    """(probe id, point) of the hourly rollups in [start, end], oldest first."""
    names = ("ts_ms", *AGG_COLUMNS, "sample_count", LATENCY_RUNS)  # rollups count it
    query = select(*key_columns(MetricRollup, MetricRollup.hour),
                   *(as_cents(getattr(MetricRollup, n)) for n in AGG_COLUMNS),
                   MetricRollup.sample_count, MetricRollup.latency_sample_count).where(
        MetricRollup.node_id == node_id, MetricRollup.probe_id.in_(probe_ids),
        MetricRollup.hour >= start, MetricRollup.hour <= end)
    points = _as_points(db.session.execute(
        query.order_by(MetricRollup.hour).limit(MAX_POINTS)).all(), names)
    for _series, point in points:
        point["sent"] = point["received"] = None
    return points


def raw_points(node_id, probe_ids: list, start: datetime, end: datetime,
               now: datetime) -> dict[str, list[dict]]:
    """Each probe's runs in [start, end]: the database's rows and the live hour, merged."""
    merged: dict[str, dict[int, dict]] = {str(p): {} for p in probe_ids}
    for series, point in _rows(node_id, probe_ids, start, end, aggregated=False):
        merged[series][point["ts_ms"]] = point
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


def folded_minutes_from(now: datetime) -> datetime:
    """The first minute minute_points folds from raw runs (and not from stored minutes)
    when its range starts before it: the live hour's, where a minute may not be
    aggregated yet."""
    return minute_of(now - RAW_MAX - timedelta(minutes=1))


def minute_of(moment: datetime) -> datetime:
    return from_ms(to_ms(moment) - to_ms(moment) % MINUTE_MS)


def hour_of(moment: datetime) -> datetime:
    return from_ms(to_ms(moment) - to_ms(moment) % HOUR_MS)


def minute_points(node_id, probe_ids: list, start: datetime, end: datetime,
                  now: datetime) -> dict[str, list[dict]]:
    """Each probe's minutes in [start, end]: the stored aggregates and, inside the live
    hour (where a minute may not be aggregated yet), minutes folded from the raw runs."""
    minutes: dict[str, dict[int, dict]] = {str(p): {} for p in probe_ids}
    for series, point in _rows(node_id, probe_ids, start, end, aggregated=True):
        minutes[series][point["ts_ms"]] = point
    live_from = max(start, now - RAW_MAX - timedelta(minutes=1))
    if live_from <= end:
        first_minute = max(minute_of(start), folded_minutes_from(now))
        for series, runs in raw_points(node_id, probe_ids, first_minute, end, now).items():
            minutes[series].update(fold(runs))
    return {series: [points[ts] for ts in sorted(points)] for series, points in minutes.items()}


def _node_probes(node_id) -> list[Probe]:
    return db.session.scalars(select(Probe).where(Probe.node_id == node_id)
                              .order_by(Probe.created_at, Probe.id)).all()


def _reported_summaries(node_id, start: datetime, end: datetime, now: datetime) -> list[dict]:
    handle = get_redis()
    return [from_live(p) for p in live_cache.read_series(
        handle.client, handle.prefix, str(node_id), NODE_SERIES, to_ms(start), to_ms(end),
        to_ms(now))]


def node_series(node_id, start: datetime, end: datetime, now: datetime,
                resolution: str) -> list[dict]:
    """The node's own series: reported summaries, and derived points where none was."""
    probes = _node_probes(node_id)
    intervals = {str(p.id): p.interval_seconds for p in probes}
    if resolution == "1h":
        return _node_hours(node_id, probes, intervals, start, end, now)
    reach = timedelta(seconds=max(intervals.values(), default=60))
    minutes = minute_points(node_id, [p.id for p in probes], start - reach, end, now)
    derived = derived_minutes(intervals, minutes, to_ms(start), to_ms(end))
    reported = _reported_summaries(node_id, start, end, now)
    fill = [p for ts, p in derived.items() if not _reported_around(ts, reported)]
    if resolution == "raw":
        fill = [{**{k: p.get(k) for k in ("ts_ms", *RAW_FIELDS)}, COMPUTED: True} for p in fill]
        return sorted([*reported, *fill], key=lambda p: p["ts_ms"])
    per_minute = {**fold(reported), **{p["ts_ms"]: p for p in fill}}
    return [per_minute[ts] for ts in sorted(per_minute)]


def _node_hours(node_id, probes: list[Probe], intervals: dict[str, int], start: datetime,
                end: datetime, now: datetime) -> list[dict]:
    """Hours of the node: before the live hour the mean over its probes' hours (rollups);
    the hours the live hour touches from its minute series (reported summaries)."""
    live_from = hour_of(now - RAW_MAX)
    hours: dict[int, dict] = {}
    if start < live_from:
        by_probe = hour_points(node_id, [p.id for p in probes], start,
                               min(end, live_from - timedelta(milliseconds=1)), now)
        hours.update(derived_minutes(intervals, by_probe, to_ms(start),
                                     to_ms(min(end, live_from)) - 1, step_ms=HOUR_MS))
    if end >= live_from:
        minutes = node_series(node_id, max(start, live_from), end, now, "1m")
        hours.update(rollup(minutes, HOUR_MS))
    return [hours[ts] for ts in sorted(hours)]


def _reported_around(minute_ms: int, reported: list[dict]) -> bool:
    """Whether the Beacon's reported summaries stand for this minute: it lies within the
    span they cover, widened by REPORT_MARGIN (a summary covers the runs since the previous
    report, and runs are stamped at their start: derived points beside reported ones would
    show the same runs twice)."""
    if not reported:
        return False
    first = reported[0]["ts_ms"] - reported[0]["ts_ms"] % MINUTE_MS
    last = reported[-1]["ts_ms"] - reported[-1]["ts_ms"] % MINUTE_MS
    return first - REPORT_MARGIN_MS < minute_ms < last + REPORT_MARGIN_MS


def hour_points(node_id, probe_ids: list, start: datetime, end: datetime,
                now: datetime) -> dict[str, list[dict]]:
    """Each probe's hours in [start, end]: the hourly rollups, and the hours not rolled up
    yet (the open hour, or a late minute's) computed from the minutes."""
    first_hour = hour_of(start)
    hours: dict[str, dict[int, dict]] = {str(p): {} for p in probe_ids}
    for series, point in _rollup_rows(node_id, probe_ids, first_hour, end):
        hours[series][point["ts_ms"]] = point
    newest = max((max(h, default=0) for h in hours.values()), default=0)
    rest_from = max(first_hour, from_ms(newest + HOUR_MS)) if newest else first_hour
    if rest_from <= end:
        for series, minutes in minute_points(node_id, probe_ids, rest_from, end, now).items():
            for ts, point in rollup(minutes, HOUR_MS).items():
                hours[series].setdefault(ts, point)
    return {series: [points[ts] for ts in sorted(points)] for series, points in hours.items()}


def probe_series(node_id, probe_id, start: datetime, end: datetime, now: datetime,
                 resolution: str) -> list[dict]:
    if resolution == "raw":
        return raw_points(node_id, [probe_id], start, end, now)[str(probe_id)]
    if resolution == "1h":
        return hour_points(node_id, [probe_id], start, end, now)[str(probe_id)]
    return minute_points(node_id, [probe_id], start, end, now)[str(probe_id)]


def node_metrics(node_id: uuid.UUID, probe: Probe | None, start: datetime, end: datetime,
                 resolution: str, now: datetime | None = None) -> dict:
    """GET /nodes/{id}/metrics: a probe's (or the node's own) points over [start, end]."""
    now = now or datetime.now(UTC)
    resolution = pick_resolution(resolution, start, end)
    if probe is None:
        points = node_series(node_id, start, end, now, resolution)
    else:
        points = probe_series(node_id, probe.id, start, end, now, resolution)
    return {"node_id": node_id, "probe_id": probe.id if probe else None,
            "probe": probe_info(probe) if probe else None, "resolution": resolution,
            "points": [answered(p) for p in points]}


def node_live(node_id: uuid.UUID, now: datetime | None = None) -> dict:
    """GET /nodes/{id}/live: the last hour of the node's series and of every probe."""
    now = now or datetime.now(UTC)
    start = now - RAW_MAX
    probes = _node_probes(node_id)
    runs = raw_points(node_id, [p.id for p in probes], start, now, now)
    return {"node_id": node_id,
            "summary": [answered(p) for p in node_series(node_id, start, now, now, "raw")],
            "probes": [{"probe_id": str(p.id), **probe_info(p),
                        "points": [answered(x) for x in runs[str(p.id)]]} for p in probes]}


def latest_summaries(node_ids: Iterable[str]) -> dict[str, dict | None]:
    """Each node's newest reported summary in the live hour, in one round trip."""
    node_ids = list(node_ids)
    handle = get_redis()
    pipe = handle.client.pipeline(transaction=False)
    for node_id in node_ids:
        pipe.zrange(live_cache.live_key(handle.prefix, node_id, NODE_SERIES), -1, -1)
    result: dict[str, dict | None] = defaultdict(lambda: None)
    for node_id, members in zip(node_ids, pipe.execute(), strict=True):
        if members:
            p = live_cache.decode_member(NODE_SERIES, members[0])
            result[node_id] = {"latency_ms": p.latency_ms,
                               "packet_loss_rate": p.packet_loss_rate,
                               "jitter_ms": p.jitter_ms}
    return {node_id: result[node_id] for node_id in node_ids}
