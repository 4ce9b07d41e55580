"""Chart points packed a period to a row: a finished hour of a probe's minutes, a day of
its hourly rollups.

A node page's day at 1m is 10 probes × 1,440 minutes × 8 values, its month at 1h 10 ×
720 × 8 (SPEC §9: each served in ≤ 150 ms on ≥ 50 M raw rows). Read as rows, PostgreSQL
spends most of that turning `numeric` columns into floats (through text), the driver
parsing them back, and fetching one heap page per rollup (hours are written hour by
hour, so one probe's hours lie a page apart). Packed, the same day is 240 rows and the
month 300, whose fields are bytea of big-endian float8 (what `float8send` writes; NaN
where a point has no value), turned into lists by `array` in C; a bit per field says
whether the period has a point without a value, so NaN becomes None only in those
fields. TimescaleDB's compressed chunks store finished series the same way.

Blocks are derived, never the record, and are written in the transaction that writes
what they derive from (app.history.rollups): the hour's minute block with the hour's
rollup, the day's rollup block with every rollup of the day. The minute aggregates are
written elsewhere (the aggregation), so an hour whose mark says a minute changed since
its roll-up (a late point) is read from its minute rows instead. The values are the
chart read's own (`queries.as_cents`: latencies as stored, loss rounded to 2 decimals).
PostgreSQL only: SQLite's embedded sizes read their rows. Kept as long as what they are
read instead of: minute blocks as long as raw runs (PULSE_RAW_RETENTION_DAYS: every hour
that can still be re-rolled, every 1m range `auto` picks), day blocks as long as rollups.
"""

from __future__ import annotations

import sys
import uuid
from array import array
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, String, cast, func, select, text, type_coerce
from sqlalchemy.types import NullType

from app.extensions import db, get_redis
from app.models import MetricBlock
from app.redis_keys import rollup_dirty_key
from app.timeutil import DAY_MS, HOUR_MS

# The chart's fields (app.history.columns.CHART_FIELDS), each with the SQL of its stored
# value as the chart read answers it (`s` is the source row).
PACKED_FIELDS = {
    "latency_ms": "s.latency_ms", "latency_median_ms": "s.latency_median_ms",
    "latency_min_ms": "s.latency_min_ms", "latency_max_ms": "s.latency_max_ms",
    "latency_p95_ms": "s.latency_p95_ms", "packet_loss_rate": "round(s.packet_loss_rate, 2)",
    "jitter_ms": "s.jitter_ms",
}


@dataclass(frozen=True)
class Kind:
    resolution: str  # of the points: "1m" or "1h"
    period_ms: int  # of a block
    source: str  # SQL joining the points of the block d(probe_id, period_start)
    time: str  # the points' time column
    marked: bool  # whether a point may change without its block (checked in the marks)

    def period_of(self, ms: int) -> int:
        return ms - ms % self.period_ms  # epoch days start at midnight UTC

    @property
    def write_sql(self) -> str:
        order = f"ORDER BY {self.time}"
        return f"""
INSERT INTO metric_blocks (node_id, probe_id, resolution, period_start, point_count,
    null_fields, ts_ms, {", ".join(PACKED_FIELDS)}, created_at)
SELECT s.node_id, s.probe_id, '{self.resolution}', d.period_start, count(*),
    {" + ".join(f"(CASE WHEN count({expr}) < count(*) THEN {1 << bit} ELSE 0 END)"
                for bit, expr in enumerate(PACKED_FIELDS.values()))},
    string_agg(int8send(CAST(extract(epoch FROM {self.time}) * 1000 AS int8)), ''::bytea
               {order}),
    {", ".join(f"string_agg(float8send(coalesce(CAST({expr} AS float8), 'NaN')), ''::bytea "
               f"{order})" for expr in PACKED_FIELDS.values())},
    now()
FROM unnest(CAST(:probes AS uuid[]), CAST(:periods AS timestamptz[]))
    AS d(probe_id, period_start)
{self.source}
GROUP BY s.node_id, s.probe_id, d.period_start
ON CONFLICT (probe_id, resolution, period_start) DO UPDATE SET node_id = EXCLUDED.node_id,
    point_count = EXCLUDED.point_count, null_fields = EXCLUDED.null_fields,
    ts_ms = EXCLUDED.ts_ms, {", ".join(f"{name} = EXCLUDED.{name}" for name in PACKED_FIELDS)},
    created_at = EXCLUDED.created_at
"""


MINUTES = Kind("1m", HOUR_MS, """JOIN metrics s ON s.probe_id = d.probe_id
    AND s.is_aggregated = true AND s.timestamp >= d.period_start
    AND s.timestamp < d.period_start + interval '1 hour'""", "s.timestamp", marked=True)
HOURS = Kind("1h", DAY_MS, """JOIN metric_rollups_hourly s ON s.probe_id = d.probe_id
    AND s.hour >= d.period_start AND s.hour < d.period_start + interval '1 day'""",
             "s.hour", marked=False)
_LITTLE_ENDIAN = sys.byteorder == "little"


def write(kind: Kind, pairs: list[tuple[uuid.UUID, datetime]]) -> None:
    """(Re)pack these (probe, period start) from their points, in the caller's
    transaction. A period without points keeps no block (its chart reads the rows)."""
    if pairs:
        db.session.execute(text(kind.write_sql), {"probes": [str(p) for p, _ in pairs],
                                                  "periods": [start for _, start in pairs]})


def _unpacked(data, typecode: str) -> list:
    values = array(typecode)
    values.frombytes(data)
    if _LITTLE_ENDIAN:
        values.byteswap()
    return values.tolist()


def _with_none(values: list) -> list:
    return [None if value != value else value for value in values]  # NaN != NaN


def read(kind: Kind, node_id, probe_ids: list, first: datetime,
         last: datetime) -> dict[str, dict[int, dict[str, list]]]:
    """The current blocks of these probes whose period starts in [first, last]: probe id ->
    period start ms -> "ts_ms" and each packed field, None where a point has no value (as
    its row answers). Minute blocks marked as changed since their roll-up are left out."""
    found: dict[str, dict[int, dict[str, list]]] = {str(p): {} for p in probe_ids}
    if not probe_ids or first > last:
        return found
    rows = db.session.connection().execute(
        select(cast(MetricBlock.probe_id, String),
               cast(func.date_part("epoch", MetricBlock.period_start) * 1000, BigInteger),
               MetricBlock.null_fields,
               # the driver's buffers as they come (no copy to bytes): `array` reads them
               *(type_coerce(getattr(MetricBlock, name), NullType())
                 for name in ("ts_ms", *PACKED_FIELDS)))
        .where(MetricBlock.node_id == node_id, MetricBlock.probe_id.in_(probe_ids),
               MetricBlock.resolution == kind.resolution,
               MetricBlock.period_start >= first, MetricBlock.period_start <= last)).all()
    if not rows:
        return found
    marks = [None] * len(rows)
    if kind.marked:
        handle = get_redis()
        marks = handle.client.zmscore(rollup_dirty_key(handle.prefix),
                                      [f"{probe}:{start}" for probe, start, *_ in rows])
    fields = list(enumerate(PACKED_FIELDS))
    for (probe, start, null_fields, stamps, *packed), mark in zip(rows, marks, strict=True):
        if mark is not None:
            continue  # a minute changed after this block was packed: read the rows
        block = {"ts_ms": _unpacked(stamps, "q")}
        for bit, name in fields:
            values = _unpacked(packed[bit], "d")
            block[name] = _with_none(values) if null_fields >> bit & 1 else values
        found[probe][start] = block
    return found


_UNPACKED_SQL = {
    MINUTES: """
SELECT probe_id, date_trunc('hour', timestamp) AS period FROM metrics
WHERE is_aggregated AND timestamp >= :since AND timestamp < :until GROUP BY 1, 2
EXCEPT SELECT probe_id, period_start FROM metric_blocks WHERE resolution = '1m'
ORDER BY 2, 1""",
    HOURS: """
SELECT probe_id, date_trunc('day', hour AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS period
FROM metric_rollups_hourly WHERE hour >= :since AND hour < :until GROUP BY 1, 2
HAVING (probe_id, date_trunc('day', hour AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', count(*))
    NOT IN (SELECT probe_id, period_start, point_count FROM metric_blocks
            WHERE resolution = '1h')
ORDER BY 2, 1""",
}


def pack_missing(kind: Kind, since: datetime, until: datetime, batch: int = 2000,
                 progress=None) -> int:
    """Pack every period of `kind` starting in [since, until) whose points have no block
    (or, for days, a block of fewer hours than the day has): history from before the
    blocks, after an upgrade (`flask history pack`), or a seed. Commits each batch; the
    number of periods packed. PostgreSQL only."""
    pairs = db.session.execute(text(_UNPACKED_SQL[kind]),
                               {"since": since, "until": until}).all()
    for first in range(0, len(pairs), batch):
        write(kind, [(probe, period) for probe, period in pairs[first:first + batch]])
        db.session.commit()
        if progress:
            progress(kind, min(first + batch, len(pairs)), len(pairs))
    return len(pairs)
