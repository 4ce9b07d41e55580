"""Flush: drain the pending stream into the metrics table, idempotently.

Each run takes entries abandoned by dead consumers (XAUTOCLAIM) and then everything new,
writes their rows in transactions of at most 100 rows (PostgreSQL: COPY into a temporary
staging table, then INSERT … SELECT … ON CONFLICT DO NOTHING; SQLite: INSERT OR IGNORE),
and only then acknowledges and deletes the entries. A crash anywhere leaves entries
pending; writing them again changes nothing thanks to the unique key
(probe_id, timestamp, is_aggregated).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from flask import current_app

from app.extensions import get_redis
from app.history import pending
from app.history.aggregation import mark_minutes_dirty
from app.history.early_flush import clear_early_flush_flag
from app.history.flush_writers import ROWS_PER_TRANSACTION, WriterPool
from app.history.node_state import persist_node_seen
from app.redis_keys import pending_stream
from app.telemetry.stats import record_stats

log = logging.getLogger(__name__)
ENTRIES_PER_READ = 200
DEFAULT_MAX_SECONDS = 120.0


@dataclass
class FlushReport:
    entries: int = 0
    rows: int = 0
    inserted: int = 0
    poisoned: int = 0
    max_lag_ms: int = 0


class _Batches:
    """Entries gathered into batches of at most 100 rows, across reads, and handed to the
    writer pool; each batch's entries are acknowledged only after its rows are committed."""

    def __init__(self, client, prefix: str, report: FlushReport) -> None:
        self.client, self.prefix, self.report = client, prefix, report
        self.ids: list[bytes] = []
        self.rows: list[pending.PendingRow] = []
        self._report_lock = threading.Lock()
        self.pool = WriterPool(self._acknowledge, current_app.config["PULSE_FLUSH_WRITERS"])

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
                self.submit()
            self.ids.append(entry_id)
            self.rows.extend(rows)

    def submit(self) -> None:
        if self.ids:
            self.pool.submit(self.ids, self.rows)
        self.ids, self.rows = [], []

    def finish(self) -> None:
        """Submit what is gathered and wait until every batch is written (or one failed)."""
        try:
            self.submit()
        finally:
            self.pool.close()

    def _acknowledge(self, ids: list[bytes], rows: list[pending.PendingRow],
                     inserted: int) -> None:
        # Runs after the batch's commit (in whichever writer committed it): one MULTI round
        # trip with the aggregation marks and the ack.
        pipe = self.client.pipeline()
        if rows:
            mark_minutes_dirty({(r.probe_id, r.ts_ms) for r in rows}, pipe)
        pending.queue_acknowledge(pipe, self.prefix, ids, len(rows))
        pipe.execute()
        lag_ms = int(time.time() * 1000) - min(int(i.split(b"-")[0]) for i in ids)
        with self._report_lock:
            report = self.report
            report.inserted += inserted
            report.max_lag_ms = max(report.max_lag_ms, lag_ms)
            report.entries += len(ids)
            report.rows += len(rows)


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
    try:
        batches = _Batches(client, prefix, report)
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
        finally:
            batches.finish()
        persist_node_seen()
        pending.reset_count_if_empty(client, prefix)
    finally:
        _forget_consumer(client, prefix, consumer)
    record_stats(client, prefix, {"rows_flushed": report.inserted},
                 {"flush_lag_ms": report.max_lag_ms, "last_flush_ms": int(time.time() * 1000)})
    return report


def _forget_consumer(client, prefix: str, consumer: str) -> None:
    """Drop this run's consumer name if it holds nothing, so names do not pile up."""
    try:
        info = client.xpending_range(pending_stream(prefix), pending.GROUP,
                                     min="-", max="+", count=1, consumername=consumer)
        if not info:
            client.xgroup_delconsumer(pending_stream(prefix), pending.GROUP, consumer)
    except Exception:  # Redis gone mid-run: the next run cleans up
        log.debug("could not drop consumer %s", consumer, exc_info=True)
