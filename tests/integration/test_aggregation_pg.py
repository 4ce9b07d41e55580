"""Aggregates and the live cache on real PostgreSQL and Redis (in-process task calls)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db, get_redis
from app.history.live_cache import LIVE_WINDOW_MS
from app.ingest.heartbeats import ingest
from app.models import Metric
from app.redis_keys import live_key
from tests.integration.helpers import iso, setup_node

pytestmark = pytest.mark.integration


def item(ctx, ts: datetime, latency: float, loss: float = 0.0, jitter: float = 1.0,
         probe_index: int = 0) -> dict:
    return {"node_id": ctx["node_id"], "timestamp": iso(ts), "latency_ms": latency,
            "packet_loss_rate": loss, "jitter_ms": jitter, "config_version": "v",
            "probe_id": ctx["probe_ids"][probe_index]}


def aggregate_row(probe_id: str, minute: datetime) -> Metric | None:
    return db.session.scalar(select(Metric).where(
        Metric.probe_id == uuid.UUID(probe_id), Metric.is_aggregated.is_(True),
        Metric.timestamp == minute))


def test_live_and_backfilled_minutes(pg_app):
    from worker.tasks import aggregate_minute, flush_metrics

    ctx = setup_node(pg_app, probe_count=1)
    node_id = uuid.UUID(ctx["node_id"])
    probe = ctx["probe_ids"][0]
    now = datetime.now(UTC)
    live_minute = (now - timedelta(minutes=3)).replace(second=0, microsecond=0)
    old_minute = (now - timedelta(hours=5)).replace(second=0, microsecond=0)
    with pg_app.app_context():
        ingest(node_id, [item(ctx, live_minute + timedelta(seconds=s), lat, loss, jit)
                         for s, lat, loss, jit in ((0, 10.0, 0.0, 1.0), (20, 20.0, 10.0, 3.0),
                                                   (40, 30.0, 20.0, 2.0))])
        ingest(node_id, [item(ctx, old_minute + timedelta(seconds=5), 50.0, 100.0, 0.0)])
        flush_metrics()
        aggregate_minute()
        live = aggregate_row(probe, live_minute)
        assert float(live.latency_ms) == 20.0
        assert float(live.latency_min_ms) == 10.0 and float(live.latency_max_ms) == 30.0
        assert float(live.packet_loss_rate) == 10.0 and float(live.packet_loss_max) == 20.0
        assert float(live.jitter_ms) == 2.0 and float(live.jitter_max_ms) == 3.0
        assert live.sample_count == 3
        old = aggregate_row(probe, old_minute)
        # a run that lost everything has no latency, whatever it sent (SPEC §5)
        assert (old.latency_ms, float(old.packet_loss_rate), old.sample_count) == (
            None, 100.0, 1)
        # a late point back-filled into the live minute: its aggregate is rewritten
        ingest(node_id, [item(ctx, live_minute + timedelta(seconds=50), 60.0)])
        flush_metrics()
        aggregate_minute()
        db.session.expire_all()
        live = aggregate_row(probe, live_minute)
        assert float(live.latency_ms) == 30.0 and live.sample_count == 4
        assert float(live.latency_max_ms) == 60.0
        before = db.session.scalar(select(func.count(Metric.id)))
        aggregate_minute()
        flush_metrics()
        assert db.session.scalar(select(func.count(Metric.id))) == before == 5 + 2


def test_live_cache_keeps_one_hour_with_ttl(pg_app):
    ctx = setup_node(pg_app, probe_count=1)
    node_id = uuid.UUID(ctx["node_id"])
    now = datetime.now(UTC)
    with pg_app.app_context():
        points = [item(ctx, now - timedelta(minutes=m), 10.0 + m) for m in range(0, 120, 5)]
        assert ingest(node_id, points).accepted == len(points)
        handle = get_redis()
        cutoff_ms = int(now.timestamp() * 1000) - LIVE_WINDOW_MS
        for series in (ctx["probe_ids"][0], "_node"):
            key = live_key(handle.prefix, ctx["node_id"], series)
            assert handle.client.zcount(key, "-inf", f"({cutoff_ms}") == 0
            assert handle.client.zcard(key) == 12  # minutes 0, 5, …, 55
            assert 0 < handle.client.ttl(key) <= 3600 + 300
            assert handle.client.object("encoding", key) == b"listpack"
        # re-sent points replace themselves
        ingest(node_id, points)
        key = live_key(handle.prefix, ctx["node_id"], ctx["probe_ids"][0])
        assert handle.client.zcard(key) == 12
