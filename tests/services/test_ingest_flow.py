"""Heartbeat → Redis live cache + pending → flush → rows → aggregate, on SQLite + fakeredis."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.history.aggregation import aggregate_pending_minutes
from app.history.flush import flush_pending
from app.models import Metric


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
def probes(client, operator, node):
    ids = []
    for port in (80, 443, 53):
        r = client.post("/api/v1/probes", json={"node_id": node["id"], "type": "TCP",
                                                "target": "192.0.2.1", "port": port},
                        headers=operator.headers)
        assert r.status_code == 201
        ids.append(r.get_json()["id"])
    return ids


def beat(node, probes, ts, latencies, loss=0.0, jitter=0.5):
    return {
        "node_id": node["id"], "timestamp": iso(ts), "latency_ms": sum(latencies) / 3,
        "packet_loss_rate": loss, "jitter_ms": jitter, "config_version": "x",
        "results": [{"probe_id": p, "latency_ms": lat, "packet_loss_rate": loss,
                     "jitter_ms": jitter} for p, lat in zip(probes, latencies, strict=True)],
    }


def test_heartbeat_to_rows_and_aggregates(app, client, node, probes):
    headers = {"Authorization": f"Bearer {node['token']}"}
    now = datetime.now(UTC)
    minute = (now - timedelta(minutes=5)).replace(second=0, microsecond=0)
    for i, lats in enumerate(([10, 20, 30], [12, 22, 32], [14, 24, 34])):
        r = client.post("/api/v1/beacon/heartbeat",
                        json=beat(node, probes, minute + timedelta(seconds=10 * i), lats),
                        headers=headers)
        assert r.status_code == 200, r.get_json()
        assert r.get_json()["accepted"] == 3
        assert r.get_json()["drift_detected"] is True
    # the same heartbeat again stores nothing twice
    client.post("/api/v1/beacon/heartbeat", json=beat(node, probes, minute, [10, 20, 30]),
                headers=headers)
    with app.app_context():
        report = flush_pending()
        assert report.inserted == 9
        assert flush_pending().inserted == 0
        assert db.session.scalar(select(func.count(Metric.id))) == 9
        assert aggregate_pending_minutes() == 3
        assert aggregate_pending_minutes() == 0
        agg = db.session.scalars(select(Metric).where(
            Metric.is_aggregated.is_(True), Metric.probe_id == uuid.UUID(probes[0]))).one()
        assert float(agg.latency_ms) == 12.0
        assert float(agg.latency_min_ms) == 10.0
        assert float(agg.latency_max_ms) == 14.0
        assert agg.sample_count == 3
