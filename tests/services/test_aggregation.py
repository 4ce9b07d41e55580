"""Minute aggregation with catch-up (SPEC §6): values, late and back-filled points,
idempotence, incomplete minutes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.api.common import iso_utc
from app.extensions import db
from app.history.aggregation import aggregate_minute, aggregate_pending_minutes
from app.history.flush import flush_pending
from app.models import Metric

BATCH = "/api/v1/beacon/heartbeats"


@pytest.fixture
def app(reset_app):
    """A fresh app for each test, without building one (tests.conftest.reset_app)."""
    return reset_app


@pytest.fixture
def send(client, node, node_headers):
    """send([(probe_id, ts, latency, loss, jitter), …]) — one heartbeat per point."""

    def post(points):
        items = [{"node_id": node["id"], "timestamp": iso_utc(ts), "latency_ms": lat,
                  "packet_loss_rate": loss, "jitter_ms": jit,
                  "results": [{"probe_id": probe_id, "latency_ms": lat,
                               "packet_loss_rate": loss, "jitter_ms": jit}]}
                 for probe_id, ts, lat, loss, jit in points]
        answer = client.post(BATCH, json={"heartbeats": items}, headers=node_headers)
        assert answer.status_code == 200, answer.get_json()
        assert answer.get_json()["accepted"] == len(points), answer.get_json()

    return post


@pytest.fixture
def minute():
    """The start of a complete minute five minutes ago."""
    return (datetime.now(UTC) - timedelta(minutes=5)).replace(second=0, microsecond=0)


def aggregates(probe_id: str | None = None) -> list[Metric]:
    query = select(Metric).where(Metric.is_aggregated.is_(True))
    if probe_id is not None:
        query = query.where(Metric.probe_id == uuid.UUID(probe_id))
    return list(db.session.scalars(query.order_by(Metric.probe_id, Metric.timestamp)))


def snapshot() -> list[tuple]:
    columns = [c.key for c in Metric.__table__.columns if c.key not in ("id", "created_at")]
    return [tuple(getattr(m, c) for c in columns) for m in aggregates()]


def utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def test_minute_aggregate_values(app, send, node, node_probes, minute):
    probe = node_probes[0]
    send([(probe, minute + timedelta(seconds=5), 10.0, 0.0, 1.0),
          (probe, minute + timedelta(seconds=25), 20.5, 10.0, 2.0),
          (probe, minute + timedelta(seconds=59, milliseconds=999), 30.0, 50.0, 6.0),
          (probe, minute + timedelta(seconds=60), 99.0, 100.0, 9.0),      # the next minute
          (node_probes[1], minute + timedelta(seconds=30), 500.0, 0.0, 0.0)])  # another probe
    with app.app_context():
        assert flush_pending().inserted == 5
        assert aggregate_pending_minutes() == 3
        first, second = aggregates(probe)
        assert utc(first.timestamp) == minute
        assert str(first.node_id) == node["id"] and str(first.probe_id) == probe
        assert first.sample_count == 3
        assert first.latency_ms == Decimal("20.17")          # (10 + 20.5 + 30) / 3
        assert first.latency_min_ms == Decimal("10.00")
        assert first.latency_max_ms == Decimal("30.00")
        assert first.packet_loss_rate == Decimal("20.0000")  # mean loss, percent
        assert first.packet_loss_max == Decimal("50.0000")
        assert first.jitter_ms == Decimal("3.00")
        assert first.jitter_max_ms == Decimal("6.00")

        assert utc(second.timestamp) == minute + timedelta(minutes=1)
        # The run that lost everything sent latency 99: a dead run has no latency (SPEC §5).
        assert (second.sample_count, second.latency_ms, second.jitter_ms,
                second.packet_loss_max) == (1, None, None, Decimal("100.0000"))
        [other] = aggregates(node_probes[1])
        assert (other.sample_count, other.latency_ms) == (1, Decimal("500.00"))
        raw = db.session.scalars(select(Metric).where(Metric.is_aggregated.is_(False))).all()
        assert len(raw) == 5  # raw rows are kept


def test_late_point_recomputes_the_minute(app, send, node_probes, minute):
    probe = node_probes[0]
    send([(probe, minute + timedelta(seconds=s), lat, 0.0, 1.0)
          for s, lat in ((0, 10.0), (20, 20.0))])
    with app.app_context():
        flush_pending()
        assert aggregate_pending_minutes() == 1
        [before] = aggregates(probe)
        assert (before.sample_count, before.latency_ms) == (2, Decimal("15.00"))

    send([(probe, minute + timedelta(seconds=45), 60.0, 30.0, 4.0)])  # late, same minute
    with app.app_context():
        flush_pending()
        assert aggregate_pending_minutes() == 1
        [after] = aggregates(probe)
        assert after.sample_count == 3
        assert after.latency_ms == Decimal("30.00")
        assert after.latency_max_ms == Decimal("60.00")
        assert after.packet_loss_max == Decimal("30.0000")
        assert after.packet_loss_rate == Decimal("10.0000")
        assert after.jitter_max_ms == Decimal("4.00")
        assert len(aggregates()) == 1


def test_late_point_before_the_flush_is_not_missed(app, send, node_probes, minute):
    """A point accepted but not yet flushed is aggregated once it is flushed."""
    probe = node_probes[0]
    send([(probe, minute, 10.0, 0.0, 1.0)])
    with app.app_context():
        flush_pending()
        send([(probe, minute + timedelta(seconds=30), 30.0, 0.0, 1.0)])  # pending only
        aggregate_pending_minutes()
        assert aggregates(probe)[0].sample_count == 1
        flush_pending()
        aggregate_pending_minutes()
        [row] = aggregates(probe)
        assert (row.sample_count, row.latency_ms) == (2, Decimal("20.00"))


def test_back_filled_minutes_hours_ago_are_aggregated(app, send, node_probes):
    base = (datetime.now(UTC) - timedelta(hours=5)).replace(second=0, microsecond=0)
    minutes = [base, base + timedelta(minutes=1), base + timedelta(hours=2, minutes=17),
               base - timedelta(days=5)]
    send([(node_probes[0], m + timedelta(seconds=s), 10.0 + s, 0.0, 1.0)
          for m in minutes for s in (1, 31)])
    with app.app_context():
        assert flush_pending().inserted == 8
        assert aggregate_pending_minutes() == 4
        rows = aggregates(node_probes[0])
        assert [utc(r.timestamp) for r in rows] == sorted(minutes)
        assert all(r.sample_count == 2 and r.latency_ms == Decimal("26.00") for r in rows)


def test_running_twice_changes_nothing(app, send, node_probes, minute):
    send([(p, minute + timedelta(seconds=s), 10.0 + s, s / 10, 1.0)
          for p in node_probes for s in (0, 15, 30)])
    with app.app_context():
        flush_pending()
        assert aggregate_pending_minutes() == 3
        first = snapshot()
        assert len(first) == 3
        assert aggregate_pending_minutes() == 0
        assert snapshot() == first
        # recomputing a minute by hand yields the very same row
        for probe in node_probes:
            assert aggregate_minute(uuid.UUID(probe), minute) is True
        db.session.commit()
        assert snapshot() == first


def test_reflushing_the_same_points_does_not_change_the_aggregate(app, send, node_probes,
                                                                  minute):
    points = [(node_probes[0], minute + timedelta(seconds=s), 10.0 + s, 0.0, 1.0)
              for s in (0, 30)]
    send(points)
    with app.app_context():
        flush_pending()
        aggregate_pending_minutes()
        first = snapshot()
    send(points)  # re-sent: no new raw rows
    with app.app_context():
        assert flush_pending().inserted == 0
        aggregate_pending_minutes()
        assert snapshot() == first


def test_the_current_minute_is_not_aggregated_yet(app, send, node_probes):
    now = datetime.now(UTC).replace(microsecond=0)
    current = now.replace(second=0)
    send([(node_probes[0], current, 10.0, 0.0, 1.0)])
    with app.app_context():
        flush_pending()
        assert aggregate_pending_minutes(now=now) == 0
        assert aggregates() == []
        # once the minute is over, the mark left by the flush is taken
        assert aggregate_pending_minutes(now=current + timedelta(minutes=1)) == 1
        [row] = aggregates()
        assert utc(row.timestamp) == current and row.sample_count == 1


def test_minute_without_raw_rows_gets_no_aggregate(app, node_probes, minute):
    with app.app_context():
        assert aggregate_minute(uuid.UUID(node_probes[0]), minute) is False
        db.session.commit()
        assert aggregates() == []
        assert aggregate_pending_minutes() == 0


def test_latency_is_averaged_over_the_runs_that_received_and_loss_over_all(
        app, send, node_probes, minute):
    probe = node_probes[0]
    send([(probe, minute + timedelta(seconds=5), 10.0, 0.0, 1.0),
          (probe, minute + timedelta(seconds=25), 0.0, 100.0, 0.0),   # dead: an old agent's 0
          (probe, minute + timedelta(seconds=45), 30.0, 20.0, 3.0)])
    with app.app_context():
        flush_pending()
        aggregate_pending_minutes()
        [agg] = aggregates(probe)
        assert agg.latency_ms == Decimal("20.00")        # (10 + 30) / 2, not / 3
        assert agg.latency_min_ms == Decimal("10.00")    # never the dead run's 0
        assert agg.jitter_ms == Decimal("2.00")
        assert agg.packet_loss_rate == Decimal("40.0000")  # (0 + 100 + 20) / 3
        assert agg.sample_count == 3


def test_a_minute_whose_mark_was_lost_is_still_aggregated(app, send, node_probes):
    from app.extensions import get_redis
    from app.redis_keys import agg_dirty_key

    probe = node_probes[0]
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=3)
    send([(probe, minute + timedelta(seconds=10), 12.0, 0.0, 1.0)])
    with app.app_context():
        flush_pending()
        handle = get_redis()
        assert handle.client.zcard(agg_dirty_key(handle.prefix)) == 1
        handle.client.delete(agg_dirty_key(handle.prefix))   # the mark is lost
        assert aggregate_pending_minutes() == 1
        [agg] = aggregates(probe)
        assert utc(agg.timestamp) == minute and agg.latency_ms == Decimal("12.00")
        assert aggregate_pending_minutes() == 0              # and not again


def test_after_redis_lost_its_data_every_minute_of_the_retention_is_checked(
        app, send, node_probes):
    from app.extensions import get_redis
    from app.redis_keys import agg_alive_key, agg_dirty_key

    probe = node_probes[0]
    old = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=2)
    send([(probe, old + timedelta(seconds=10), 12.0, 0.0, 1.0)])
    with app.app_context():
        handle = get_redis()
        flush_pending()
        handle.client.set(agg_alive_key(handle.prefix), 1)   # Redis had its data so far
        handle.client.delete(agg_dirty_key(handle.prefix))
        assert aggregate_pending_minutes() == 0              # two days back: not rechecked
        handle.client.delete(agg_alive_key(handle.prefix))   # Redis lost everything
        assert aggregate_pending_minutes() == 1
        assert [utc(a.timestamp) for a in aggregates(probe)] == [old]
        assert handle.client.exists(agg_alive_key(handle.prefix))
