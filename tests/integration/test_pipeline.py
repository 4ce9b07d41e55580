"""Heartbeats through a real Celery worker and beat into real PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Metric
from tests.integration.conftest import wait_until
from tests.integration.helpers import (
    duplicate_groups,
    heartbeat,
    pending_state,
    raw_count,
    recent,
    setup_node,
)

pytestmark = pytest.mark.integration


def test_heartbeats_become_exact_rows_once(pg_app, celery_processes):
    ctx = setup_node(pg_app, probe_count=3)
    celery_processes("worker")
    celery_processes("beat")
    client, headers = ctx["client"], ctx["node_headers"]
    sent = []
    for i in range(20):
        body = heartbeat(ctx["node_id"], ctx["probe_ids"], recent(300 - i * 10), latency=10 + i)
        r = client.post("/api/v1/beacon/heartbeat", json=body, headers=headers)
        assert r.status_code == 200, r.get_json()
        assert r.get_json()["accepted"] == 3
        sent.append(body)
    for body in sent[:5]:  # re-sent heartbeats
        assert client.post("/api/v1/beacon/heartbeat", json=body,
                           headers=headers).status_code == 200
    # beat queues a flush every 10 s; the worker runs it
    wait_until(lambda: raw_count(pg_app) == 60, 40, message="60 raw rows")
    assert pending_state(pg_app) == (0, 0)
    with pg_app.app_context():
        from app.history.flush import flush_pending

        assert flush_pending().inserted == 0  # a re-run writes nothing
        rows = db.session.scalars(select(Metric).where(
            Metric.is_aggregated.is_(False),
            Metric.probe_id == __import__("uuid").UUID(ctx["probe_ids"][1]),
        ).order_by(Metric.timestamp)).all()
        assert [float(r.latency_ms) for r in rows] == [11.0 + i for i in range(20)]
        assert all(float(r.packet_loss_rate) == 0 and float(r.jitter_ms) == 1.0 for r in rows)
    assert raw_count(pg_app) == 60
    assert duplicate_groups(pg_app) == 0


def test_worker_killed_mid_flush_loses_and_doubles_nothing(pg_app, server_env, celery_processes):
    from tests.integration.helpers import send_task

    ctx = setup_node(pg_app, probe_count=10)
    start = recent(3 * 3600)
    with pg_app.app_context():
        from app.ingest.heartbeats import ingest

        items = [heartbeat(ctx["node_id"], ctx["probe_ids"], start + timedelta(seconds=i))
                 for i in range(1000)]
        for chunk in range(0, 1000, 100):
            result = ingest(__import__("uuid").UUID(ctx["node_id"]), items[chunk:chunk + 100])
            assert result.accepted == 1000
    assert pending_state(pg_app)[0] == 10  # one stream entry per ingest call
    worker = celery_processes("worker")
    send_task(server_env["REDIS_URL"], "worker.tasks.flush_metrics")
    written_at_kill = wait_until(lambda: raw_count(pg_app) or None, 30, interval=0.01,
                                 message="flush started")
    worker.kill()
    written_at_kill = raw_count(pg_app)
    assert 0 < written_at_kill < 10_000, "the kill must land in the middle of the flush"
    # the dead consumer's entries are read but unacknowledged; a new worker reclaims them
    celery_processes("worker")
    send_task(server_env["REDIS_URL"], "worker.tasks.flush_metrics")

    def drained():
        if raw_count(pg_app) == 10_000 and pending_state(pg_app) == (0, 0):
            return True
        send_task(server_env["REDIS_URL"], "worker.tasks.flush_metrics")
        return False

    wait_until(drained, 60, interval=2, message="10,000 rows after restart")
    assert raw_count(pg_app) == 10_000
    assert duplicate_groups(pg_app) == 0
