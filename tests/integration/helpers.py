"""Shared steps of the integration tests: a node with probes, heartbeats, counts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, text

from app.extensions import db, get_redis
from app.history import pending
from app.models import Metric
from app.redis_keys import pending_stream
from app.services import auth as auth_service


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def setup_node(app, probe_count: int = 3) -> dict:
    """Create an operator, a node and its probes through the API; return ids and headers."""
    with app.app_context():
        user = auth_service.create_user(f"op-{uuid.uuid4().hex[:6]}@example.test",
                                        "operator-password", "operator")
        token, _ = auth_service.issue_access_token(user)
    client = app.test_client()
    operator = {"Authorization": f"Bearer {token}"}
    r = client.post("/api/v1/nodes", json={"name": f"node-{uuid.uuid4().hex[:6]}"},
                    headers=operator)
    assert r.status_code == 201, r.get_json()
    node = r.get_json()
    probe_ids = []
    for i in range(probe_count):
        r = client.post("/api/v1/probes", json={"node_id": node["id"], "type": "TCP",
                                                "target": f"10.0.{i // 250}.{i % 250 + 1}",
                                                "port": 443}, headers=operator)
        assert r.status_code == 201, r.get_json()
        probe_ids.append(r.get_json()["id"])
    return {"node_id": node["id"], "probe_ids": probe_ids, "client": client,
            "node_headers": {"Authorization": f"Bearer {node['token']}"},
            "operator_headers": operator}


def heartbeat(node_id: str, probe_ids: list[str], ts: datetime, latency: float = 10.0,
              loss: float = 0.0, jitter: float = 1.0) -> dict:
    return {
        "node_id": node_id, "timestamp": iso(ts), "latency_ms": latency,
        "packet_loss_rate": loss, "jitter_ms": jitter, "config_version": "v",
        "results": [{"probe_id": p, "latency_ms": latency + i, "packet_loss_rate": loss,
                     "jitter_ms": jitter} for i, p in enumerate(probe_ids)],
    }


def recent(seconds_ago: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds_ago)


def raw_count(app) -> int:
    with app.app_context():
        count = db.session.scalar(select(func.count(Metric.id)).where(
            Metric.is_aggregated.is_(False)))
        db.session.remove()
        return count


def duplicate_groups(app) -> int:
    with app.app_context():
        groups = db.session.execute(text(
            "SELECT count(*) FROM (SELECT probe_id, timestamp, is_aggregated FROM metrics "
            "GROUP BY 1, 2, 3 HAVING count(*) > 1) d")).scalar()
        db.session.remove()
        return groups


def pending_state(app) -> tuple[int, int]:
    """(entries in the stream, entries read but not acknowledged)."""
    with app.app_context():
        handle = get_redis()
        stream = pending_stream(handle.prefix)
        length = handle.client.xlen(stream)
        try:
            info = handle.client.xpending(stream, pending.GROUP)
            unacked = info["pending"]
        except Exception:
            unacked = 0
        return length, unacked


def send_task(broker_url: str, name: str) -> None:
    from celery import Celery

    client = Celery("it-client", broker=broker_url)
    try:
        client.send_task(name)
    finally:
        client.close()
