"""PostgreSQL and Redis outages while Pulse runs with a real worker and beat."""

from __future__ import annotations

import time

import pytest

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


def post_heartbeats(ctx, count: int, first_seconds_ago: float) -> None:
    for i in range(count):
        body = heartbeat(ctx["node_id"], ctx["probe_ids"], recent(first_seconds_ago - i))
        r = ctx["client"].post("/api/v1/beacon/heartbeat", json=body,
                               headers=ctx["node_headers"])
        assert r.status_code == 200, r.get_json()


def test_postgres_down_during_flushing_then_every_point_once(pg_app, pg_server,
                                                             celery_processes):
    ctx = setup_node(pg_app, probe_count=3)
    worker = celery_processes("worker")
    celery_processes("beat")
    post_heartbeats(ctx, 10, 600)
    wait_until(lambda: raw_count(pg_app) == 30, 40, message="first 30 rows")
    # the node cache is warm, so ingest keeps accepting without PostgreSQL
    pg_server.stop("fast")
    try:
        post_heartbeats(ctx, 20, 500)
        assert pending_state(pg_app)[0] >= 20
        # beat keeps queueing flushes; they fail on the database and retry with backoff
        wait_until(lambda: "Retry in" in worker.log() or "OperationalError" in worker.log(),
                   40, message="a flush failing on the stopped database")
    finally:
        pg_server.start()
    wait_until(lambda: raw_count(pg_app) == 90, 60, interval=1, message="90 rows after restart")
    wait_until(lambda: pending_state(pg_app) == (0, 0), 30, message="pending drained")
    assert raw_count(pg_app) == 90
    assert duplicate_groups(pg_app) == 0


def test_redis_restart_ingest_and_worker_recover(pg_app, redis_server, celery_processes):
    ctx = setup_node(pg_app, probe_count=3)
    worker = celery_processes("worker")
    celery_processes("beat")
    post_heartbeats(ctx, 5, 600)
    redis_server.restart()  # SIGTERM: AOF is written on shutdown and replayed on start
    post_heartbeats(ctx, 5, 500)  # the API's client reconnects on its own
    wait_until(lambda: raw_count(pg_app) == 30, 60, interval=1,
               message="rows from before and after the restart")
    assert worker.proc.poll() is None, "the worker survived the restart"
    # a second restart while the worker is idle: it reconnects and keeps flushing
    redis_server.restart()
    time.sleep(1)
    post_heartbeats(ctx, 5, 400)
    wait_until(lambda: raw_count(pg_app) == 45, 60, interval=1, message="rows after 2nd restart")
    assert duplicate_groups(pg_app) == 0
    assert pending_state(pg_app) == (0, 0)
