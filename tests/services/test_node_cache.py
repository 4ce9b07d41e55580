"""The Redis node cache cannot serve a rotated token or a stale probe set."""

from __future__ import annotations

import uuid

from app.extensions import get_redis
from app.services.keys import node_auth_key, node_state_key
from app.services.node_cache import forget_token, node_state, resolve_node_token
from app.services.tokens import hash_token


def test_rotated_token_cannot_be_recached_by_a_racing_lookup(app, node, client, operator):
    old = node["token"]
    r = client.post(f"/api/v1/nodes/{node['id']}/token", headers=operator.headers)
    assert r.status_code == 200
    with app.app_context():
        handle = get_redis()
        key = node_auth_key(handle.prefix, hash_token(old))
        # a lookup that read the old row before the rotation committed now tries to cache it
        assert handle.client.set(key, node["id"], ex=300, nx=True) is None
        assert resolve_node_token(old) is None
        assert resolve_node_token(r.get_json()["token"]) == uuid.UUID(node["id"])


def test_state_computed_before_a_change_is_not_served_after_it(app, node, client, operator):
    node_id = uuid.UUID(node["id"])
    with app.app_context():
        version_before, probes_before = node_state(node_id)
        assert probes_before == frozenset()
        handle = get_redis()
        stale = handle.client.hgetall(node_state_key(handle.prefix, node["id"]))
    r = client.post("/api/v1/probes", json={"node_id": node["id"], "type": "TCP",
                                            "target": "192.0.2.7", "port": 22},
                    headers=operator.headers)
    assert r.status_code == 201
    with app.app_context():
        handle = get_redis()
        # a racing request writes back the state it computed from the old rows
        handle.client.hset(node_state_key(handle.prefix, node["id"]), mapping=stale)
        version_after, probes_after = node_state(node_id)
        assert probes_after == {r.get_json()["id"]}
        assert version_after != version_before


def test_forget_token_is_a_tombstone(app):
    with app.app_context():
        forget_token(hash_token("pbn_gone"))
        assert resolve_node_token("pbn_gone") is None


def test_probe_created_by_another_process_is_accepted_at_once(app, node, client, operator):
    """This process's short cache predates the probe; ingest revalidates before refusing."""
    from datetime import UTC, datetime

    from app.extensions import db
    from app.models import Probe
    from app.services.keys import node_generation_key

    headers = {"Authorization": f"Bearer {node['token']}"}
    beat = {"node_id": node["id"], "timestamp": datetime.now(UTC).isoformat(),
            "latency_ms": 1, "packet_loss_rate": 0, "jitter_ms": 0}
    assert client.post("/api/v1/beacon/heartbeat", json=beat, headers=headers).status_code == 200
    with app.app_context():  # what another API process does: rows + Redis, not our memory
        probe = Probe(node_id=uuid.UUID(node["id"]), type="TCP", target="192.0.2.9", port=80)
        db.session.add(probe)
        db.session.commit()
        probe_id = str(probe.id)
        handle = get_redis()
        handle.client.incr(node_generation_key(handle.prefix, node["id"]))
    r = client.post("/api/v1/beacon/heartbeat", json={**beat, "probe_id": probe_id},
                    headers=headers)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["accepted"] == 1
