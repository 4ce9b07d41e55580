"""Writing pending rows into the metrics table: one transaction of at most 100 rows each.

On PostgreSQL a batch is one `COPY` straight into `metrics` (partition routing included):
almost every batch holds new points of live probes only, and is written once. A batch the
table refuses — a re-sent point already stored (unique key), a probe deleted since its
points were accepted (foreign key) — is rolled back and written the careful way: `COPY`
into a temporary staging table, then `INSERT … SELECT … ON CONFLICT DO NOTHING` joined
to the probes, which stores each new point once and drops the orphans. On SQLite an
insert-or-ignore. A flush run hands its batches to
a `WriterPool`: on PostgreSQL several threads, each with its own connection, write batches
side by side (a 100-row transaction is mostly waiting on the server, and the server's
index work for one batch does not block another's), and each batch is acknowledged in
Redis by the thread that committed it, right after its commit.
"""

from __future__ import annotations

import io
import logging
import queue
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from flask import current_app
from psycopg2 import errors as pg_errors
from sqlalchemy import select

from app.extensions import db
from app.history import pending
from app.models import Metric, Probe
from app.timeutil import from_ms

log = logging.getLogger(__name__)
ROWS_PER_TRANSACTION = 100
# Two writers overlap one batch's server work with the next batch's; more adds little on
# the two-core machines measured in bench/flush.py (docs/benchmarks.md).
DEFAULT_WRITERS = 2
DEADLOCK_RETRIES = 3

_STAGE_DDL = """
CREATE TEMP TABLE IF NOT EXISTS metrics_stage (
    node_id uuid, probe_id uuid, ts timestamptz,
    latency_ms numeric(10,2), packet_loss_rate numeric(7,4), jitter_ms numeric(10,2),
    latency_min_ms numeric(10,2), latency_median_ms numeric(10,2),
    latency_p95_ms numeric(10,2), latency_max_ms numeric(10,2),
    sent integer, received integer, error_code varchar(32), is_aggregated boolean,
    created_at timestamptz
) ON COMMIT DELETE ROWS
"""
# The join drops points of probes deleted since they were accepted (their rows would
# violate the foreign key and block the batch forever). Rows go in key order so that two
# writers inserting the same re-sent point take their index locks in the same order.
_STAGE_INSERT = """
INSERT INTO metrics (node_id, probe_id, timestamp, latency_ms, packet_loss_rate, jitter_ms,
                     latency_min_ms, latency_median_ms, latency_p95_ms, latency_max_ms,
                     sent, received, error_code, is_aggregated, created_at)
SELECT s.node_id, s.probe_id, s.ts, s.latency_ms, s.packet_loss_rate, s.jitter_ms,
       s.latency_min_ms, s.latency_median_ms, s.latency_p95_ms, s.latency_max_ms,
       s.sent, s.received, s.error_code, s.is_aggregated, s.created_at
FROM metrics_stage s JOIN probes p ON p.id = s.probe_id AND p.node_id = s.node_id
ORDER BY s.probe_id, s.ts
ON CONFLICT (probe_id, timestamp, is_aggregated) DO NOTHING
"""


_COLUMNS = ("node_id, probe_id, timestamp, latency_ms, packet_loss_rate, jitter_ms, "
            "latency_min_ms, latency_median_ms, latency_p95_ms, latency_max_ms, sent, "
            "received, error_code, is_aggregated, created_at")
_DIRECT_COPY = f"COPY metrics ({_COLUMNS}) FROM STDIN"
_STAGE_COPY = "COPY metrics_stage FROM STDIN"


def dedupe(rows: list[pending.PendingRow]) -> list[pending.PendingRow]:
    latest: dict[tuple[str, int], pending.PendingRow] = {}
    for row in rows:
        latest[(row.probe_id, row.ts_ms)] = row
    return list(latest.values())


def _ms(value: float | None) -> str:
    return "\\N" if value is None else f"{value:.2f}"


def _plain(value: int | str | None) -> str:
    return "\\N" if value is None else str(value)


def _copy_text(rows: list[pending.PendingRow]) -> str:
    """COPY's text format; \\N is null. Error codes are SPEC §7's (no tab or backslash).
    Rows in key order, so that two writers storing the same re-sent point take their
    index locks in the same order."""
    created = datetime.now(UTC).isoformat()
    lines = []
    for r in sorted(rows, key=lambda row: (row.probe_id, row.ts_ms)):
        lines.append(f"{r.node_id}\t{r.probe_id}\t{from_ms(r.ts_ms).isoformat()}\t"
                     f"{_ms(r.latency_ms)}\t{r.packet_loss_rate:.4f}\t{_ms(r.jitter_ms)}\t"
                     f"{_ms(r.latency_min_ms)}\t{_ms(r.latency_median_ms)}\t"
                     f"{_ms(r.latency_p95_ms)}\t{_ms(r.latency_max_ms)}\t{_plain(r.sent)}\t"
                     f"{_plain(r.received)}\t{_plain(r.error)}\tf\t{created}\n")
    return "".join(lines)


class PostgresWriter:
    """One pooled connection kept for a whole flush run, so a 100-row transaction costs
    its COPY and COMMIT only."""

    def __init__(self, engine) -> None:
        self._engine = engine
        self._raw = None

    def write(self, rows: list[pending.PendingRow]) -> int:
        for attempt in range(1, DEADLOCK_RETRIES + 1):
            try:
                return self._write_once(rows)
            except pg_errors.DeadlockDetected:
                # Rows are inserted in key order, so this needs a lock order we did not
                # foresee; the batch is idempotent, so writing it again is safe.
                if attempt == DEADLOCK_RETRIES:
                    raise
                log.warning("flush batch deadlocked; writing it again (attempt %d)", attempt)
        raise AssertionError("unreachable")

    def _write_once(self, rows: list[pending.PendingRow]) -> int:
        text = _copy_text(rows)
        if self._raw is None:
            self._raw = self._engine.raw_connection()
        raw = self._raw
        try:
            with raw.cursor() as cur:
                try:
                    cur.copy_expert(_DIRECT_COPY, io.StringIO(text))
                    inserted = len(rows)
                except (pg_errors.UniqueViolation, pg_errors.ForeignKeyViolation):
                    raw.rollback()
                    inserted = self._write_carefully(cur, text)
            raw.commit()
            return inserted
        except Exception:
            self._raw = None
            try:
                raw.rollback()
            finally:
                raw.close()
            raise

    @staticmethod
    def _write_carefully(cur, text: str) -> int:
        """The batch through the staging table: each new point once, orphans dropped."""
        cur.execute(_STAGE_DDL)
        cur.copy_expert(_STAGE_COPY, io.StringIO(text))
        cur.execute(_STAGE_INSERT)
        return cur.rowcount

    def close(self) -> None:
        if self._raw is not None:
            raw, self._raw = self._raw, None
            raw.close()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


class SessionWriter:
    """SQLite (embedded mode): insert-or-ignore through the Flask-SQLAlchemy session."""

    def write(self, rows: list[pending.PendingRow]) -> int:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        probe_ids = {r.probe_id for r in rows}
        known = {
            (str(p.id), str(p.node_id))
            for p in db.session.execute(select(Probe.id, Probe.node_id).where(
                Probe.id.in_([uuid.UUID(i) for i in probe_ids])))
        }
        now = datetime.now(UTC)
        values = [
            {"node_id": uuid.UUID(r.node_id), "probe_id": uuid.UUID(r.probe_id),
             "timestamp": from_ms(r.ts_ms), "latency_ms": _round(r.latency_ms),
             "packet_loss_rate": round(r.packet_loss_rate, 4), "jitter_ms": _round(r.jitter_ms),
             "latency_min_ms": _round(r.latency_min_ms),
             "latency_median_ms": _round(r.latency_median_ms),
             "latency_p95_ms": _round(r.latency_p95_ms),
             "latency_max_ms": _round(r.latency_max_ms), "sent": r.sent,
             "received": r.received, "error_code": r.error, "is_aggregated": False,
             "created_at": now}
            for r in rows if (r.probe_id, r.node_id) in known
        ]
        if not values:
            db.session.commit()
            return 0
        result = db.session.execute(
            sqlite_insert(Metric.__table__).on_conflict_do_nothing(), values)
        db.session.commit()
        return max(result.rowcount, 0)

    def close(self) -> None:
        pass


def new_writer():
    engine = db.engine
    return PostgresWriter(engine) if engine.dialect.name == "postgresql" else SessionWriter()


def write_rows(rows: list[pending.PendingRow], writer=None) -> int:
    """Insert rows (deduplicated) in transactions of at most 100; returns how many were new."""
    rows = dedupe(rows)
    own = writer is None
    writer = writer or new_writer()
    try:
        return sum(writer.write(rows[start:start + ROWS_PER_TRANSACTION])
                   for start in range(0, len(rows), ROWS_PER_TRANSACTION))
    finally:
        if own:
            writer.close()


Batch = tuple[list[bytes], list[pending.PendingRow]]
# Called after a batch's rows are committed, with the batch and how many rows were new.
Committed = Callable[[list[bytes], list[pending.PendingRow], int], None]


class WriterPool:
    """Writes submitted batches and calls `on_committed` for each, after its commit.

    With one writer (SQLite, or `writers=1`) batches are written inline. With more, each
    thread has its own writer and connection; `submit` blocks while every writer is busy
    and two more batches wait, which bounds memory. After the first failure no further
    batch is written (their entries stay pending); `close` re-raises it.
    """

    def __init__(self, on_committed: Committed, writers: int = DEFAULT_WRITERS) -> None:
        self._on_committed = on_committed
        postgres = db.engine.dialect.name == "postgresql"
        self._threads: list[threading.Thread] = []
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        if not postgres or writers <= 1:
            self._inline = new_writer()
            return
        self._inline = None
        self._queue: queue.Queue[Batch | None] = queue.Queue(maxsize=writers * 2)
        app = current_app._get_current_object()
        for index in range(writers):
            thread = threading.Thread(target=self._run, args=(app,),
                                      name=f"flush-writer-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def submit(self, ids: list[bytes], rows: list[pending.PendingRow]) -> None:
        if self._error is not None:
            raise self._error
        if self._inline is not None:
            self._write(self._inline, ids, rows)
        else:
            self._queue.put((ids, rows))

    def close(self) -> None:
        """Wait for every submitted batch; raise the first failure, if any."""
        try:
            for _ in self._threads:
                self._queue.put(None)
            for thread in self._threads:
                thread.join()
        finally:
            if self._inline is not None:
                self._inline.close()
        if self._error is not None:
            raise self._error

    def _write(self, writer, ids: list[bytes], rows: list[pending.PendingRow]) -> None:
        inserted = write_rows(rows, writer) if rows else 0
        self._on_committed(ids, rows, inserted)

    def _run(self, app) -> None:
        # Whatever happens here, the thread keeps taking batches off the queue until the
        # end marker, so that submit() and close() can never block on a dead writer.
        writer = None
        try:
            with app.app_context():
                writer = new_writer()
                self._drain(writer)
        except BaseException as exc:  # re-raised by close() in the caller
            self._fail(exc)
            self._drain(None)
        finally:
            if writer is not None:
                writer.close()

    def _drain(self, writer) -> None:
        while (batch := self._queue.get()) is not None:
            if writer is None or self._error is not None:
                continue  # not written: those entries stay pending
            try:
                self._write(writer, *batch)
            except BaseException as exc:
                self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            self._error = self._error or exc
