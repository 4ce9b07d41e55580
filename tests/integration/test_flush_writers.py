"""The flush's parallel writers on real PostgreSQL and Redis: exact rows, nothing lost
when a writer fails, a deadlocked batch written again."""

from __future__ import annotations

import logging
import threading

import pytest
from psycopg2 import OperationalError
from psycopg2 import errors as pg_errors

from app.history import flush_writers
from app.history.flush import flush_pending
from app.ingest.heartbeats import ingest
from tests.integration.helpers import (
    duplicate_groups,
    heartbeat,
    pending_state,
    raw_count,
    recent,
    setup_node,
)

pytestmark = pytest.mark.integration


def _ingest(app, ctx, bodies: list[dict]) -> None:
    import uuid

    with app.test_request_context():
        for body in bodies:
            result = ingest(uuid.UUID(ctx["node_id"]), [body])
            assert result.accepted == len(body["results"])


def _heartbeats(ctx, count: int) -> list[dict]:
    return [heartbeat(ctx["node_id"], ctx["probe_ids"], recent(3000 - i), latency=5 + i % 50)
            for i in range(count)]


@pytest.fixture
def writer_threads(monkeypatch):
    """Names of the threads that committed a batch (one entry per transaction)."""
    seen: list[str] = []
    real = flush_writers.PostgresWriter._write_once

    def recording(self, rows):
        inserted = real(self, rows)
        seen.append(threading.current_thread().name)
        return inserted

    monkeypatch.setattr(flush_writers.PostgresWriter, "_write_once", recording)
    return seen


def test_parallel_writers_store_each_point_once_despite_resends(pg_app, writer_threads):
    pg_app.config["PULSE_FLUSH_WRITERS"] = 4
    ctx = setup_node(pg_app, probe_count=3)
    bodies = _heartbeats(ctx, 400)
    # Re-sends in reverse order: the same points in other entries, in batches that other
    # writers take at the same time, in a different order.
    _ingest(pg_app, ctx, bodies + bodies[::-1][:300])
    with pg_app.app_context():
        report = flush_pending()
    assert report.entries == 700
    assert report.rows == 2100
    assert report.inserted == 1200
    assert raw_count(pg_app) == 1200
    assert duplicate_groups(pg_app) == 0
    assert pending_state(pg_app) == (0, 0)
    # Entries are whole heartbeats (3 points): 33 of them fill a 99-row transaction.
    assert len(writer_threads) == 22
    assert len(set(writer_threads)) >= 2, "the batches were not written side by side"
    assert all(name.startswith("flush-writer-") for name in writer_threads)


def test_points_of_a_probe_deleted_since_are_dropped_and_their_batch_kept(pg_app, monkeypatch):
    """The direct COPY refuses a batch holding an orphan (foreign key): that batch is
    written the careful way, which stores its other points and drops the orphans."""
    ctx = setup_node(pg_app, probe_count=3)
    _ingest(pg_app, ctx, _heartbeats(ctx, 50))
    gone = ctx["probe_ids"][0]
    answer = ctx["client"].delete(f"/api/v1/probes/{gone}?confirm=true",
                                  headers=ctx["operator_headers"])
    assert answer.status_code == 204
    careful = []
    real = flush_writers.PostgresWriter._write_carefully

    def recording(cur, text):
        careful.append(len(text.splitlines()))
        return real(cur, text)

    monkeypatch.setattr(flush_writers.PostgresWriter, "_write_carefully",
                        staticmethod(recording))
    with pg_app.app_context():
        report = flush_pending()
    assert report.rows == 150 and report.inserted == 100
    assert raw_count(pg_app) == 100
    assert careful == [99, 51]  # both batches held the deleted probe's points
    assert pending_state(pg_app) == (0, 0)


def test_a_failing_writer_leaves_its_batches_pending_for_the_next_run(pg_app, monkeypatch):
    pg_app.config["PULSE_FLUSH_WRITERS"] = 3
    ctx = setup_node(pg_app, probe_count=3)
    _ingest(pg_app, ctx, _heartbeats(ctx, 300))
    real = flush_writers.PostgresWriter._write_once
    calls = {"n": 0}
    lock = threading.Lock()

    def failing_from_the_fourth(self, rows):
        with lock:
            calls["n"] += 1
            n = calls["n"]
        if n >= 4:
            raise OperationalError("server closed the connection unexpectedly")
        return real(self, rows)

    monkeypatch.setattr(flush_writers.PostgresWriter, "_write_once", failing_from_the_fourth)
    with pg_app.app_context(), pytest.raises(OperationalError):
        flush_pending()
    assert raw_count(pg_app) == 3 * 99  # exactly the three batches that committed
    length, unacked = pending_state(pg_app)
    assert length == 300 - 3 * 33  # only their entries were acknowledged
    assert 0 < unacked <= length  # the rest read by the failed run or not read at all

    monkeypatch.setattr(flush_writers.PostgresWriter, "_write_once", real)
    pg_app.config["PULSE_FLUSH_CLAIM_IDLE_SECONDS"] = 0
    with pg_app.app_context():
        report = flush_pending()
    assert report.inserted == 900 - 3 * 99
    assert raw_count(pg_app) == 900
    assert duplicate_groups(pg_app) == 0
    assert pending_state(pg_app) == (0, 0)


def test_a_deadlocked_batch_is_written_again(pg_app, monkeypatch, caplog):
    ctx = setup_node(pg_app, probe_count=3)
    _ingest(pg_app, ctx, _heartbeats(ctx, 10))
    real = flush_writers.PostgresWriter._write_once
    raised = []

    def deadlock_once(self, rows):
        if not raised:
            raised.append(True)
            raise pg_errors.DeadlockDetected("deadlock detected")
        return real(self, rows)

    monkeypatch.setattr(flush_writers.PostgresWriter, "_write_once", deadlock_once)
    with caplog.at_level(logging.WARNING, logger="app.history.flush_writers"), \
            pg_app.app_context():
        report = flush_pending()
    assert raised == [True]
    assert report.inserted == 30
    assert raw_count(pg_app) == 30
    assert pending_state(pg_app) == (0, 0)
    assert "deadlocked" in caplog.text


@pytest.mark.timeout(60)
def test_writers_that_cannot_start_fail_the_run_without_hanging(pg_app, monkeypatch):
    pg_app.config["PULSE_FLUSH_WRITERS"] = 2
    ctx = setup_node(pg_app, probe_count=3)
    _ingest(pg_app, ctx, _heartbeats(ctx, 300))  # 10 batches: more than the queue holds

    def no_connection():
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(flush_writers, "new_writer", no_connection)
    with pg_app.app_context(), pytest.raises(OperationalError):
        flush_pending()
    assert raw_count(pg_app) == 0
    assert pending_state(pg_app)[0] == 300  # nothing acknowledged
