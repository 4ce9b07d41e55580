"""Flush: drain the pending stream into the metrics table, idempotently.

Each run takes entries abandoned by dead consumers (XAUTOCLAIM) and then everything new,
writes their rows in transactions of at most 100 rows (PostgreSQL: COPY into a temporary
staging table, then INSERT … SELECT … ON CONFLICT DO NOTHING; SQLite: INSERT OR IGNORE),
and only then acknowledges and deletes the entries. A crash anywhere leaves entries
pending; writing them again changes nothing thanks to the unique key
(probe_id, timestamp, is_aggregated).
"""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import current_app
from sqlalchemy import select

from app.extensions import db, get_redis
from app.models import Metric, Node, Probe
from app.services import pending
from app.services.aggregation import mark_minutes_dirty
from app.services.keys import node_seen_key, seen_dirty_key
from app.services.scheduling import clear_early_flush_flag
from app.telemetry import record_stats

log = logging.getLogger(__name__)
ROWS_PER_TRANSACTION = 100
ENTRIES_PER_READ = 200
DEFAULT_MAX_SECONDS = 120.0

_STAGE_DDL = """
CREATE TEMP TABLE IF NOT EXISTS metrics_stage (
    node_id uuid, probe_id uuid, ts timestamptz,
    latency_ms numeric(10,2), packet_loss_rate numeric(7,4), jitter_ms numeric(10,2)
) ON COMMIT DELETE ROWS
"""
# The join drops points of probes deleted since they were accepted (their rows would
# violate the foreign key and block the batch forever).
_STAGE_INSERT = """
INSERT INTO metrics (node_id, probe_id, timestamp, latency_ms, packet_loss_rate, jitter_ms,
                     is_aggregated, created_at)
SELECT s.node_id, s.probe_id, s.ts, s.latency_ms, s.packet_loss_rate, s.jitter_ms, false, now()
FROM metrics_stage s JOIN probes p ON p.id = s.probe_id AND p.node_id = s.node_id
ON CONFLICT (probe_id, timestamp, is_aggregated) DO NOTHING
"""


@dataclass
class FlushReport:
    entries: int = 0
    rows: int = 0
    inserted: int = 0
    poisoned: int = 0
    max_lag_ms: int = 0


def to_datetime(ts_ms: int) -> datetime:
    return datetime.fromtimestamp(ts_ms / 1000, UTC)


def _dedupe(rows: list[pending.PendingRow]) -> list[pending.PendingRow]:
    latest: dict[tuple[str, int], pending.PendingRow] = {}
    for row in rows:
        latest[(row.probe_id, row.ts_ms)] = row
    return list(latest.values())


def _copy_text(rows: list[pending.PendingRow]) -> io.StringIO:
    buffer = io.StringIO()
    for r in rows:
        buffer.write(f"{r.node_id}\t{r.probe_id}\t{to_datetime(r.ts_ms).isoformat()}\t"
                     f"{r.latency_ms:.2f}\t{r.packet_loss_rate:.4f}\t{r.jitter_ms:.2f}\n")
    buffer.seek(0)
    return buffer


class _Writer:
    """Writes batches of rows, one transaction each.

    On PostgreSQL a flush run keeps one pooled connection and creates the staging table on
    it once, so a 100-row transaction costs its COPY, INSERT and COMMIT only (no pool
    checkout ping, DDL or reset per transaction).
    """

    def __init__(self) -> None:
        self.postgres = db.engine.dialect.name == "postgresql"
        self._raw = None
        self._staged = False

    def write(self, rows: list[pending.PendingRow]) -> int:
        return self._write_postgres(rows) if self.postgres else _write_generic(rows)

    def _write_postgres(self, rows: list[pending.PendingRow]) -> int:
        buffer = _copy_text(rows)
        if self._raw is None:
            self._raw, self._staged = db.engine.raw_connection(), False
        raw = self._raw
        try:
            with raw.cursor() as cur:
                if not self._staged:
                    cur.execute(_STAGE_DDL)
                cur.copy_expert("COPY metrics_stage FROM STDIN", buffer)
                cur.execute(_STAGE_INSERT)
                inserted = cur.rowcount
            raw.commit()
            self._staged = True
            return inserted
        except Exception:
            self._raw = None
            try:
                raw.rollback()
            finally:
                raw.close()
            raise

    def close(self) -> None:
        if self._raw is not None:
            raw, self._raw = self._raw, None
            raw.close()


def _write_generic(rows: list[pending.PendingRow]) -> int:
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    probe_ids = {r.probe_id for r in rows}
    known = {
        (str(p.id), str(p.node_id))
        for p in db.session.execute(
            select(Probe.id, Probe.node_id).where(Probe.id.in_([uuid.UUID(i) for i in probe_ids]))
        )
    }
    now = datetime.now(UTC)
    values = [
        {"node_id": uuid.UUID(r.node_id), "probe_id": uuid.UUID(r.probe_id),
         "timestamp": to_datetime(r.ts_ms), "latency_ms": round(r.latency_ms, 2),
         "packet_loss_rate": round(r.packet_loss_rate, 4), "jitter_ms": round(r.jitter_ms, 2),
         "is_aggregated": False, "created_at": now}
        for r in rows if (r.probe_id, r.node_id) in known
    ]
    if not values:
        db.session.commit()
        return 0
    result = db.session.execute(sqlite_insert(Metric.__table__).on_conflict_do_nothing(), values)
    db.session.commit()
    return max(result.rowcount, 0)


def write_rows(rows: list[pending.PendingRow], writer: _Writer | None = None) -> int:
    """Insert rows in transactions of at most 100; returns how many were new."""
    rows = _dedupe(rows)
    own = writer is None
    writer = writer or _Writer()
    try:
        return sum(writer.write(rows[start:start + ROWS_PER_TRANSACTION])
                   for start in range(0, len(rows), ROWS_PER_TRANSACTION))
    finally:
        if own:
            writer.close()


class _Batches:
    """Entries gathered into transactions of at most 100 rows, across reads; each batch's
    entries are acknowledged only after its rows are committed."""

    def __init__(self, client, prefix: str, report: FlushReport, writer: _Writer) -> None:
        self.client, self.prefix, self.report, self.writer = client, prefix, report, writer
        self.ids: list[bytes] = []
        self.rows: list[pending.PendingRow] = []

    def add(self, entries: list[tuple[bytes, dict]]) -> None:
        for entry_id, fields in entries:
            try:
                rows = pending.decode_entry(fields)
            except (KeyError, ValueError) as exc:
                log.error("dropping undecodable pending entry %s: %s", entry_id, exc)
                pending.acknowledge(self.client, self.prefix, [entry_id], 0)
                self.report.poisoned += 1
                continue
            if self.rows and len(self.rows) + len(rows) > ROWS_PER_TRANSACTION:
                self.commit()
            self.ids.append(entry_id)
            self.rows.extend(rows)

    def commit(self) -> None:
        report = self.report
        # After the commit, one MULTI round trip: the aggregation marks and the ack.
        pipe = self.client.pipeline()
        if self.rows:
            report.inserted += write_rows(self.rows, self.writer)
            mark_minutes_dirty({(r.probe_id, r.ts_ms) for r in self.rows}, pipe)
        now_ms = int(time.time() * 1000)
        if self.ids:
            oldest_ms = min(int(i.split(b"-")[0]) for i in self.ids)
            report.max_lag_ms = max(report.max_lag_ms, now_ms - oldest_ms)
        pending.queue_acknowledge(pipe, self.prefix, self.ids, len(self.rows))
        pipe.execute()
        report.entries += len(self.ids)
        report.rows += len(self.rows)
        self.ids, self.rows = [], []


def flush_pending(max_seconds: float = DEFAULT_MAX_SECONDS) -> FlushReport:
    """Persist everything pending (bounded by max_seconds; the rest waits for the next run)."""
    handle = get_redis()
    client, prefix = handle.client, handle.prefix
    clear_early_flush_flag()
    pending.ensure_group(client, prefix)
    consumer = pending.consumer_name()
    idle_ms = int(current_app.config.get("PULSE_FLUSH_CLAIM_IDLE_SECONDS", 60) * 1000)
    report = FlushReport()
    deadline = time.monotonic() + max_seconds
    writer = _Writer()
    batches = _Batches(client, prefix, report, writer)
    try:
        abandoned = pending.claim_abandoned(client, prefix, consumer, idle_ms)
        if abandoned:
            log.warning("reclaimed %d pending entries from a dead consumer", len(abandoned))
            batches.add(abandoned)
        while time.monotonic() < deadline:
            entries = pending.read_new(client, prefix, consumer, ENTRIES_PER_READ)
            if not entries:
                break
            batches.add(entries)
        batches.commit()
        writer.close()
        persist_node_seen()
        pending.reset_count_if_empty(client, prefix)
    finally:
        writer.close()
        _forget_consumer(client, prefix, consumer)
    record_stats(client, prefix, {"rows_flushed": report.inserted},
                 {"flush_lag_ms": report.max_lag_ms, "last_flush_ms": int(time.time() * 1000)})
    return report


def _forget_consumer(client, prefix: str, consumer: str) -> None:
    """Drop this run's consumer name if it holds nothing, so names do not pile up."""
    try:
        info = client.xpending_range(pending.pending_stream_key(prefix), pending.GROUP,
                                     min="-", max="+", count=1, consumername=consumer)
        if not info:
            client.xgroup_delconsumer(pending.pending_stream_key(prefix), pending.GROUP, consumer)
    except Exception:  # Redis gone mid-run: the next run cleans up
        log.debug("could not drop consumer %s", consumer, exc_info=True)


def persist_node_seen(batch: int = 500) -> int:
    """Copy nodes' last-seen state from Redis to the nodes table."""
    handle = get_redis()
    client, prefix = handle.client, handle.prefix
    node_ids = client.spop(seen_dirty_key(prefix), batch) or []

    for raw_id in node_ids:
        node_id = raw_id.decode()
        state = client.hgetall(node_seen_key(prefix, node_id))
        node = db.session.get(Node, uuid.UUID(node_id))
        if node is None or not state:
            continue
        node.last_seen_at = to_datetime(int(state[b"last_seen_ms"]))
        if b"agent_version" in state:
            node.agent_version = state[b"agent_version"].decode()[:64]
        if b"config_version" in state:
            node.config_version = state[b"config_version"].decode()[:128]
        metadata = _load_metadata(state.get(b"metadata"))
        if metadata is not None:
            node.metadata_ = metadata
            node.hostname = _short(metadata.get("hostname"), 255) or node.hostname
            node.ip_address = _short(metadata.get("ip_address"), 64) or node.ip_address
            node.region = node.region or _short(metadata.get("region"), 64)
    db.session.commit()
    return len(node_ids)


def _load_metadata(raw: bytes | None) -> dict | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        log.warning("ignoring undecodable node metadata in Redis")
        return None
    return value if isinstance(value, dict) else None


def _short(value, limit: int) -> str | None:
    return str(value)[:limit] if value else None
