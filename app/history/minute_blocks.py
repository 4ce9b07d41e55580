"""Finished hours of a probe's minutes, packed one row per probe and hour, for charts at 1m.

A node page's day at 1m is 10 probes × 1,440 minutes × 8 values (SPEC §9: served in
≤ 150 ms on ≥ 50 M raw rows). Read as minute rows, PostgreSQL spends ~50 ms turning the
`numeric` columns into floats (through text) and the driver ~40 ms parsing them back.
Packed, the same day is 240 rows whose fields are bytea of big-endian float8 (what
`float8send` writes; NaN where a minute has no value), turned into lists by `array` in C;
a bit per field says whether the hour has a minute without a value, so NaN is turned into
None only in those fields.
TimescaleDB's compressed chunks store finished time series the same way.

Blocks are derived, never the record: written from the hour's final minute aggregates in
the transaction that writes its rollup (app.history.rollups), rewritten whenever the hour
is re-rolled, and an hour whose mark says a minute changed since (a late point not rolled
up yet) is read from its minute rows instead. The values are the chart read's own
(`queries.as_cents`: latencies as stored, loss rounded to 2 decimals). PostgreSQL only:
SQLite's embedded sizes read their minute rows. Kept as long as raw runs
(PULSE_RAW_RETENTION_DAYS): every hour that can still be re-rolled, and every 1m range the
`auto` resolution picks (≤ 2 days); older 1m reads use the minute rows.
"""

from __future__ import annotations

import sys
import uuid
from array import array
from datetime import datetime

from sqlalchemy import BigInteger, String, cast, func, select, text, type_coerce
from sqlalchemy.types import NullType

from app.extensions import db, get_redis
from app.models import MinuteBlock
from app.redis_keys import rollup_dirty_key

HOUR_MS = 3_600_000
# The chart's fields (app.history.columns.CHART_FIELDS), each with the SQL of its stored
# value as the chart read answers it.
PACKED_FIELDS = {
    "latency_ms": "m.latency_ms", "latency_median_ms": "m.latency_median_ms",
    "latency_min_ms": "m.latency_min_ms", "latency_max_ms": "m.latency_max_ms",
    "latency_p95_ms": "m.latency_p95_ms", "packet_loss_rate": "round(m.packet_loss_rate, 2)",
    "jitter_ms": "m.jitter_ms",
}
_ORDER = "ORDER BY m.timestamp"
_WRITE_SQL = f"""
INSERT INTO metric_minute_blocks (node_id, probe_id, hour, minute_count, null_fields, ts_ms,
    {", ".join(PACKED_FIELDS)}, created_at)
SELECT m.node_id, m.probe_id, d.hour, count(*),
    {" + ".join(f"(CASE WHEN count({expr}) < count(*) THEN {1 << bit} ELSE 0 END)"
                for bit, expr in enumerate(PACKED_FIELDS.values()))},
    string_agg(int8send(CAST(extract(epoch FROM m.timestamp) * 1000 AS int8)), ''::bytea
               {_ORDER}),
    {", ".join(f"string_agg(float8send(coalesce(CAST({expr} AS float8), 'NaN')), ''::bytea "
               f"{_ORDER})" for expr in PACKED_FIELDS.values())},
    now()
FROM unnest(CAST(:probes AS uuid[]), CAST(:hours AS timestamptz[])) AS d(probe_id, hour)
JOIN metrics m ON m.probe_id = d.probe_id AND m.is_aggregated = true
    AND m.timestamp >= d.hour AND m.timestamp < d.hour + interval '1 hour'
GROUP BY m.node_id, m.probe_id, d.hour
ON CONFLICT (probe_id, hour) DO UPDATE SET node_id = EXCLUDED.node_id,
    minute_count = EXCLUDED.minute_count, null_fields = EXCLUDED.null_fields,
    ts_ms = EXCLUDED.ts_ms,
    {", ".join(f"{name} = EXCLUDED.{name}" for name in PACKED_FIELDS)},
    created_at = EXCLUDED.created_at
"""
_LITTLE_ENDIAN = sys.byteorder == "little"


def write(pairs: list[tuple[uuid.UUID, datetime]]) -> None:
    """(Re)pack these (probe, hour) from their minute aggregates, in the caller's
    transaction. An hour without minutes keeps no block (its chart reads the rows)."""
    if pairs:
        db.session.execute(text(_WRITE_SQL), {"probes": [str(p) for p, _ in pairs],
                                              "hours": [hour for _, hour in pairs]})


def _unpacked(data, typecode: str) -> list:
    values = array(typecode)
    values.frombytes(data)
    if _LITTLE_ENDIAN:
        values.byteswap()
    return values.tolist()


def _with_none(values: list) -> list:
    return [None if value != value else value for value in values]  # NaN != NaN


def read(node_id, probe_ids: list, first_hour: datetime,
         last_hour: datetime) -> dict[str, dict[int, dict[str, list]]]:
    """The current blocks of these probes' hours in [first_hour, last_hour]: probe id ->
    hour ms -> "ts_ms" and each packed field, None where a minute has no value (as its
    row answers). Hours marked as changed since their roll-up are left out."""
    found: dict[str, dict[int, dict[str, list]]] = {str(p): {} for p in probe_ids}
    if not probe_ids or first_hour > last_hour:
        return found
    rows = db.session.connection().execute(
        select(cast(MinuteBlock.probe_id, String),
               cast(func.date_part("epoch", MinuteBlock.hour) * 1000, BigInteger),
               MinuteBlock.null_fields,
               # the driver's buffers as they come (no copy to bytes): `array` reads them
               *(type_coerce(getattr(MinuteBlock, name), NullType())
                 for name in ("ts_ms", *PACKED_FIELDS)))
        .where(MinuteBlock.node_id == node_id, MinuteBlock.probe_id.in_(probe_ids),
               MinuteBlock.hour >= first_hour, MinuteBlock.hour <= last_hour)).all()
    if not rows:
        return found
    handle = get_redis()
    marks = handle.client.zmscore(rollup_dirty_key(handle.prefix),
                                  [f"{probe}:{hour}" for probe, hour, *_ in rows])
    fields = list(enumerate(PACKED_FIELDS))
    for (probe, hour, null_fields, stamps, *packed), mark in zip(rows, marks, strict=True):
        if mark is not None:
            continue  # a minute changed after this block was packed: read the rows
        block = {"ts_ms": _unpacked(stamps, "q")}
        for bit, name in fields:
            values = _unpacked(packed[bit], "d")
            block[name] = _with_none(values) if null_fields >> bit & 1 else values
        found[probe][hour] = block
    return found
