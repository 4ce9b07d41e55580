"""Chart reads as columns: every probe of a node over a range, one list per field.

A node page draws 10 probes × 1,440 minutes at once (SPEC §9: its data in ≤ 150 ms). Read
as a dict per point, the stored rows cost several times that in Python: a dict each, the
garbage collector walking them, JSON of 14 fields where the chart draws 7. Here the
stored part is read as rows of the chart's fields only and transposed with `zip` (one
tuple per field) — on PostgreSQL a finished hour's minutes or a day's rollups as one
packed row (app.history.blocks) — and only the tail that is not stored yet — the live hour's minutes
folded from raw runs, the hours not rolled up yet — goes through the points of `queries`
and is appended.

The values are those GET /api/v1/nodes/{id}/metrics answers for the same range and
resolution (tests compare both), because the tail comes from the same functions and the
stored part is read with the same rounding (`queries.as_cents`).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from datetime import datetime, timedelta

from sqlalchemy import and_, case, or_, select

from app.extensions import db
from app.history import blocks, queries
from app.history.points import answered
from app.models import Metric, MetricRollup
from app.timeutil import from_ms, to_ms

CHART_FIELDS = ("latency_ms", "latency_median_ms", "latency_min_ms", "latency_max_ms",
                "latency_p95_ms", "packet_loss_rate", "jitter_ms")
Columns = dict[str, list]  # "ts_ms" and CHART_FIELDS, a value per point, oldest first
ONE_MS = timedelta(milliseconds=1)
MAX_GAPS = 40  # periods read from rows instead of blocks, in runs, before a plain read


def empty() -> Columns:
    return {"ts_ms": [], **{name: [] for name in CHART_FIELDS}}


def from_points(points: list[dict]) -> Columns:
    """Points (as answered) to columns."""
    columns = empty()
    for name, values in columns.items():
        values.extend(point.get(name) for point in points)
    return columns


def _stored(table, time_column, node_id, probe_ids: list, start: datetime, end: datetime,
            *conditions) -> dict[str, Columns]:
    """Each probe's stored rows in [start, end] as columns, in one query."""
    if start > end:
        return {str(p): empty() for p in probe_ids}
    return _stored_ranges(table, time_column, node_id, probe_ids,
                          table.probe_id.in_(probe_ids), time_column >= start,
                          time_column <= end, *conditions)


def _stored_ranges(table, time_column, node_id, probe_ids: list, *where) -> dict[str, Columns]:
    """Each probe's stored rows matching `where` as columns, in one query.

    The rows come grouped by probe (its place in `probe_ids`, a small int) and in time
    order, so the whole answer is transposed at once with `zip` and each probe's columns
    are slices of it: no Python work per row but the driver's."""
    columns = {str(p): empty() for p in probe_ids}
    if not probe_ids:
        return columns
    place = case({probe: i for i, probe in enumerate(probe_ids)}, value=table.probe_id)
    stamp = queries.key_columns(table, time_column)[1]
    query = (select(place, stamp, *(queries.as_cents(getattr(table, name))
                                    for name in CHART_FIELDS))
             .where(table.node_id == node_id, *where)
             .order_by(place, time_column))
    rows = db.session.connection().execute(query).all()  # one fetch, not row by row
    if not rows:
        return columns
    fields = list(zip(*rows, strict=True))
    places = fields[0]
    if not queries.fast_dialect():  # SQLite: datetimes, converted here
        fields[1] = [to_ms(ts) for ts in fields[1]]
    first = 0
    while first < len(places):
        place_of_probe = places[first]
        last = bisect_right(places, place_of_probe, lo=first)
        probe_columns = columns[str(probe_ids[place_of_probe])]
        for name, values in zip(("ts_ms", *CHART_FIELDS), fields[1:], strict=True):
            probe_columns[name] = list(values[first:last])
        first = last
    return columns


def _slice(columns: Columns, start_ms: int, end_ms: int) -> Columns:
    """The part of time-ordered columns in [start_ms, end_ms]."""
    stamps = columns["ts_ms"]
    low, high = bisect_left(stamps, start_ms), bisect_right(stamps, end_ms)
    if low == 0 and high == len(stamps):
        return columns
    return {name: values[low:high] for name, values in columns.items()}


def _stored_packed(kind: blocks.Kind, table, time_column, node_id, probe_ids: list,
                   start: datetime, end: datetime, *conditions) -> dict[str, Columns]:
    """`_stored`, but on PostgreSQL each period with a current block read from it
    (app.history.blocks) and only the periods without one from their rows, in one more
    query."""
    if not queries.fast_dialect() or start > end or not probe_ids:
        return _stored(table, time_column, node_id, probe_ids, start, end, *conditions)
    start_ms, end_ms = to_ms(start), to_ms(end)
    periods = range(kind.period_of(start_ms), kind.period_of(end_ms) + 1, kind.period_ms)
    packed = blocks.read(kind, node_id, probe_ids, from_ms(periods[0]), from_ms(periods[-1]))
    gaps: list[tuple[object, int, int]] = []  # (probe, from ms, to ms): runs of periods
    for probe in probe_ids:
        have, run_from = packed[str(probe)], None
        for period in periods:
            if period not in have and run_from is None:
                run_from = period
            elif period in have and run_from is not None:
                gaps.append((probe, max(run_from, start_ms), period - 1))
                run_from = None
        if run_from is not None:
            gaps.append((probe, max(run_from, start_ms), end_ms))
    if len(gaps) > MAX_GAPS:  # a patchwork of periods: the rows, in one plain query
        return _stored(table, time_column, node_id, probe_ids, start, end, *conditions)
    rows = {str(p): empty() for p in probe_ids}
    if gaps:
        rows = _stored_ranges(table, time_column, node_id, probe_ids, *conditions, or_(*(
            and_(table.probe_id == probe, time_column >= from_ms(low),
                 time_column <= from_ms(high)) for probe, low, high in gaps)))
    columns = {}
    for probe in probe_ids:
        key = str(probe)
        segments = [(period, _slice(block, start_ms, end_ms))
                    for period, block in packed[key].items()]
        segments += [(low, _slice(rows[key], low, high))
                     for gap_probe, low, high in gaps if gap_probe == probe]
        merged = empty()
        for _first, part in sorted(segments, key=lambda segment: segment[0]):
            for name, values in merged.items():
                values.extend(part[name])
        columns[key] = merged
    return columns


def _append(columns: dict[str, Columns], tail: dict[str, list[dict]]) -> dict[str, Columns]:
    for series, points in tail.items():
        for name, values in from_points([answered(p) for p in points]).items():
            columns[series][name].extend(values)
    return columns


def minute_columns(node_id, probe_ids: list, start: datetime, end: datetime,
                   now: datetime) -> dict[str, Columns]:
    """queries.minute_points as columns: the stored minutes before the live hour's folded
    ones, then those (read as points: ≤ 61 minutes a probe)."""
    tail_from = max(start, queries.folded_minutes_from(now))
    stored = _stored_packed(blocks.MINUTES, Metric, Metric.timestamp, node_id, probe_ids, start,
                            min(end, tail_from - ONE_MS), Metric.is_aggregated.is_(True))
    if tail_from > end:
        return stored
    return _append(stored, queries.minute_points(node_id, probe_ids, tail_from, end, now))


def hour_columns(node_id, probe_ids: list, start: datetime, end: datetime,
                 now: datetime) -> dict[str, Columns]:
    """queries.hour_points as columns: the rollups, then the hours after the newest one
    (not rolled up yet) computed from the minutes as hour_points does."""
    first_hour = queries.hour_of(start)
    stored = _stored_packed(blocks.HOURS, MetricRollup, MetricRollup.hour, node_id, probe_ids,
                            first_hour, end)
    newest = max((c["ts_ms"][-1] for c in stored.values() if c["ts_ms"]), default=0)
    rest_from = from_ms(newest + queries.HOUR_MS) if newest else first_hour
    if rest_from > end:
        return stored
    return _append(stored, queries.hour_points(node_id, probe_ids, rest_from, end, now))


def chart_columns(node_id, probe_ids: list, start: datetime, end: datetime, now: datetime,
                  resolution: str) -> dict[str, Columns]:
    """Each probe's points at `resolution` ("raw", "1m" or "1h") as columns."""
    if resolution == "1m":
        return minute_columns(node_id, probe_ids, start, end, now)
    if resolution == "1h":
        return hour_columns(node_id, probe_ids, start, end, now)
    runs = queries.raw_points(node_id, probe_ids, start, end, now)  # the live hour: small
    return {series: from_points([answered(p) for p in points])
            for series, points in runs.items()}
