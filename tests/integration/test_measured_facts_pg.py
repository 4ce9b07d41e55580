"""Every measured fact kept, on real PostgreSQL and Redis (issue 10).

A refused probe's error code and null latency go through the live cache, the pending
stream, COPY and the minute upsert to the answers; a minute whose Redis mark is lost is
still aggregated (the catch-up query); the live cache stays in listpack encoding with the
wider members."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.extensions import db, get_redis
from app.history.aggregation import aggregate_pending_minutes
from app.history.flush import flush_pending
from app.models import Metric
from app.redis_keys import agg_alive_key, agg_dirty_key, live_key
from app.services import auth as auth_service
from tests.integration.helpers import iso, setup_node

pytestmark = pytest.mark.integration
BATCH = "/api/v1/beacon/heartbeats"


def result(probe_id: str, **fields) -> dict:
    return {"probe_id": probe_id, "latency_ms": 21.5, "packet_loss_rate": 20.0,
            "jitter_ms": 1.5, "latency_min_ms": 19.0, "latency_median_ms": 21.0,
            "latency_p95_ms": 26.5, "latency_max_ms": 27.0, "sent": 5, "received": 4,
            "error": "ERR_CONNECTION_TIMEOUT", **fields}


def refused(probe_id: str) -> dict:
    return {"probe_id": probe_id, "latency_ms": 0.0, "packet_loss_rate": 100.0,
            "jitter_ms": 0.0, "sent": 5, "received": 0, "error": "ERR_CONNECTION_REFUSED"}


def viewer_headers(app) -> dict:
    with app.app_context():
        user = auth_service.create_user("viewer-facts@example.test", "viewer-password",
                                        "viewer")
        token, _ = auth_service.issue_access_token(user)
    return {"Authorization": f"Bearer {token}"}


def test_a_refused_probe_reaches_postgresql_and_every_resolution_as_null(pg_app):
    ctx = setup_node(pg_app, probe_count=2)
    good, dead = ctx["probe_ids"]
    client, node_id = ctx["client"], ctx["node_id"]
    minute = (datetime.now(UTC) - timedelta(hours=2)).replace(second=0, microsecond=0)
    items = [{"node_id": node_id, "timestamp": iso(minute + timedelta(seconds=s)),
              "latency_ms": 10.75, "packet_loss_rate": 60.0, "jitter_ms": 0.75,
              "results": [result(good), refused(dead)]} for s in (10, 40)]
    answer = client.post(BATCH, json={"heartbeats": items}, headers=ctx["node_headers"])
    assert answer.get_json()["accepted"] == 4, answer.get_json()
    with pg_app.app_context():
        assert flush_pending().inserted == 4
        assert aggregate_pending_minutes() == 2
        rows = db.session.scalars(select(Metric).where(Metric.probe_id == dead)
                                  .order_by(Metric.is_aggregated, Metric.timestamp)).all()
        raw, aggregate = rows[:2], rows[2]
        for row in raw:
            assert (row.latency_ms, row.jitter_ms, row.latency_min_ms, row.latency_max_ms,
                    row.sent, row.received, row.error_code) == (
                None, None, None, None, 5, 0, "ERR_CONNECTION_REFUSED")
        assert aggregate.is_aggregated and aggregate.latency_ms is None
        assert (aggregate.packet_loss_rate, aggregate.sample_count) == (Decimal("100.0000"), 2)
        [good_minute] = db.session.scalars(select(Metric).where(
            Metric.probe_id == good, Metric.is_aggregated.is_(True))).all()
        assert (good_minute.latency_median_ms, good_minute.latency_p95_ms, good_minute.sent,
                good_minute.received) == (Decimal("21.00"), Decimal("26.50"), 10, 8)
        db.session.remove()
    viewer = viewer_headers(pg_app)
    window = f"from={iso(minute - timedelta(hours=1))}&to={iso(minute + timedelta(hours=1))}"
    for resolution in ("raw", "1m", "1h"):
        answer = client.get(f"/api/v1/nodes/{node_id}/metrics?probe_id={dead}&"
                            f"resolution={resolution}&{window}", headers=viewer).get_json()
        assert answer["points"], resolution
        assert {p["latency_ms"] for p in answer["points"]} == {None}, resolution
        assert {p["packet_loss_rate"] for p in answer["points"]} == {100.0}
        assert answer["probe"]["label"].startswith("TCP #")
        if resolution == "raw":
            assert {p["error"] for p in answer["points"]} == {"ERR_CONNECTION_REFUSED"}
    # the node's own series two hours back: the mean of its probes' minutes
    [node_minute] = client.get(f"/api/v1/nodes/{node_id}/metrics?resolution=1m&{window}",
                               headers=viewer).get_json()["points"]
    assert (node_minute["latency_ms"], node_minute["packet_loss_rate"]) == (21.5, 60.0)


def test_a_minute_whose_mark_is_lost_is_aggregated_from_postgresql(pg_app):
    ctx = setup_node(pg_app, probe_count=1)
    [probe] = ctx["probe_ids"]
    minute = (datetime.now(UTC) - timedelta(minutes=4)).replace(second=0, microsecond=0)
    item = {"node_id": ctx["node_id"], "timestamp": iso(minute + timedelta(seconds=15)),
            "latency_ms": 21.5, "packet_loss_rate": 20.0, "jitter_ms": 1.5,
            "results": [result(probe)]}
    assert ctx["client"].post(BATCH, json={"heartbeats": [item]},
                              headers=ctx["node_headers"]).get_json()["accepted"] == 1
    with pg_app.app_context():
        handle = get_redis()
        handle.client.set(agg_alive_key(handle.prefix), 1)
        flush_pending()
        handle.client.delete(agg_dirty_key(handle.prefix))  # the mark is lost
        assert aggregate_pending_minutes() == 1
        assert aggregate_pending_minutes() == 0             # found once, then settled
        [row] = db.session.scalars(select(Metric).where(Metric.is_aggregated.is_(True))).all()
        assert row.latency_median_ms == Decimal("21.00")
        db.session.remove()


def test_live_members_stay_in_listpack_with_the_wider_points(pg_app):
    ctx = setup_node(pg_app, probe_count=1)
    [probe] = ctx["probe_ids"]
    now = datetime.now(UTC)
    items = [{"node_id": ctx["node_id"], "timestamp": iso(now - timedelta(seconds=30 * i)),
              "latency_ms": 59999.99, "packet_loss_rate": 99.99, "jitter_ms": 59999.99,
              "results": [result(probe, latency_ms=59999.99, latency_min_ms=59999.99,
                                 latency_median_ms=59999.99, latency_p95_ms=59999.99,
                                 latency_max_ms=59999.99, jitter_ms=59999.99,
                                 packet_loss_rate=99.99, sent=100, received=99,
                                 error="ERR_NETWORK_UNREACHABLE")]}
             for i in range(100)]
    assert ctx["client"].post(BATCH, json={"heartbeats": items},
                              headers=ctx["node_headers"]).get_json()["accepted"] == 100
    with pg_app.app_context():
        handle = get_redis()
        key = live_key(handle.prefix, ctx["node_id"], probe)
        members = handle.client.zrange(key, 0, -1)
        assert len(members) == 100
        assert max(len(m) for m in members) <= 64   # the worst case fits listpack entries
        assert handle.client.object("encoding", key) == b"listpack"
