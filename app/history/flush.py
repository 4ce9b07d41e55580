"""Flush: drain the pending stream into the metrics table, idempotently.

Each run takes entries abandoned by dead consumers (XAUTOCLAIM) and then everything new,
writes their rows in transactions of at most 100 rows (PostgreSQL: COPY into a temporary
staging table, then INSERT … SELECT … ON CONFLICT DO NOTHING; SQLite: INSERT OR IGNORE),
and only then acknowledges and deletes the entries. A crash anywhere leaves entries
pending; writing them again changes nothing thanks to the unique key
(probe_id, timestamp, is_aggregated).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass

from flask import current_app

from app.extensions import db, get_redis
from app.history import pending
from app.history.aggregation import mark_minutes_dirty
from app.history.early_flush import clear_early_flush_flag
from app.history.flush_writers import ROWS_PER_TRANSACTION, WriterPool
from app.models import Node
from app.redis_keys import node_seen_key, pending_stream, seen_dirty_key
from app.telemetry.stats import record_stats
from app.timeutil import from_ms

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


from sqlalchemy.exc import InterfaceError, OperationalError  # noqa: E402 (node state only)


def persist_node_seen(batch: int = 500, max_batches: int = 20) -> int:
    """Copy nodes' last-seen state from Redis to the nodes table, `batch` nodes a
    transaction.

    One node's bad state (text PostgreSQL refuses, e.g. a NUL character) never holds the
    others back: a batch that fails is written again node by node, and a node that fails
    alone is quarantined — its reported fields dropped for this run, its last_seen_at still
    written — and counted (pulse_node_state_quarantined_total). A database that is down
    puts the taken nodes back in the dirty set and raises (the task retries).
    """
    handle = get_redis()
    client, prefix = handle.client, handle.prefix
    written = 0
    for _ in range(max_batches):
        node_ids = client.spop(seen_dirty_key(prefix), batch) or []
        if not node_ids:
            break
        try:
            written += _persist_batch(client, prefix, node_ids)
        except _DATABASE_DOWN:
            db.session.rollback()
            client.sadd(seen_dirty_key(prefix), *node_ids)
            raise
        if len(node_ids) < batch:
            break
    return written


_DATABASE_DOWN = (OperationalError, InterfaceError)


def _persist_batch(client, prefix: str, node_ids: list[bytes]) -> int:
    pipe = client.pipeline(transaction=False)
    for raw_id in node_ids:
        pipe.hgetall(node_seen_key(prefix, raw_id.decode()))
    states = [(raw_id.decode(), state)
              for raw_id, state in zip(node_ids, pipe.execute(), strict=True) if state]
    try:
        for node_id, state in states:
            _apply_state(node_id, state)
        db.session.commit()
        return len(states)
    except _DATABASE_DOWN:
        raise
    except Exception:  # one bad node's state: find it by writing each alone
        db.session.rollback()
        log.warning("node-state batch of %d failed; writing its nodes one by one",
                    len(states), exc_info=True)
    quarantined = 0
    for node_id, state in states:
        try:
            _apply_state(node_id, state)
            db.session.commit()
            continue
        except _DATABASE_DOWN:
            raise
        except Exception as exc:
            db.session.rollback()
            log.error("quarantined node %s reported state: %s", node_id,
                      type(exc).__name__)
        quarantined += 1
        try:
            _apply_state(node_id, state, liveness_only=True)
            db.session.commit()
        except _DATABASE_DOWN:
            raise
        except Exception:
            db.session.rollback()
            log.exception("could not write last_seen_at of node %s", node_id)
    record_stats(client, prefix, {"node_state_quarantined": quarantined})
    return len(states)


def _apply_state(node_id: str, state: dict, liveness_only: bool = False) -> None:
    node = db.session.get(Node, uuid.UUID(node_id))
    if node is None:
        return
    node.last_seen_at = from_ms(int(state[b"last_seen_ms"]))
    if node.first_seen_at is None:
        node.first_seen_at = from_ms(int(state.get(b"first_seen_ms") or state[b"last_seen_ms"]))
    if liveness_only:
        return
    if b"agent_version" in state:
        node.agent_version = state[b"agent_version"].decode()[:128]
    if b"config_version" in state:
        node.config_version = state[b"config_version"].decode()[:128]
    metadata = _load_metadata(state.get(b"metadata"))
    if metadata is not None:
        node.metadata_ = metadata
        node.hostname = _short(metadata.get("hostname"), 255) or node.hostname
        node.ip_address = _short(metadata.get("ip_address"), 64) or node.ip_address
        node.region = node.region or _short(metadata.get("region"), 64)
    # Flushed here, so a value the database refuses fails on this node, not at commit.
    db.session.flush()


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
