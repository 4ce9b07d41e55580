"""The audit trail (SPEC §4): who rotated a token or deleted a probe, in the same
transaction as the change, failed logins too, never a secret."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from app.extensions import db
from app.models import AuditLog
from app.services import audit
from app.services import nodes as node_service
from tests.support.api import assert_error

AUDIT = "/api/v1/audit-log"


def entries(client, admin, **query):
    response = client.get(AUDIT, query_string=query, headers=admin.headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_every_change_through_the_api_is_recorded(client, admin, operator):
    node = client.post("/api/v1/nodes", json={"name": "audited"}, headers=operator.headers)
    node_id = node.get_json()["id"]
    client.patch(f"/api/v1/nodes/{node_id}", json={"region": "eu"}, headers=operator.headers)
    client.post(f"/api/v1/nodes/{node_id}/token", headers=operator.headers)
    probe = client.post("/api/v1/probes", json={"node_id": node_id, "type": "TCP",
                                                "target": "example.com", "port": 443},
                        headers=operator.headers).get_json()
    client.patch(f"/api/v1/probes/{probe['id']}", json={"count": 3}, headers=operator.headers)
    client.delete(f"/api/v1/probes/{probe['id']}?confirm=true", headers=operator.headers)
    token = client.post("/api/v1/api-tokens", json={"name": "ci", "role": "viewer"},
                        headers=admin.headers).get_json()
    client.delete(f"/api/v1/api-tokens/{token['id']}", headers=admin.headers)
    user = client.post("/api/v1/users", json={"email": "new@example.test",
                                              "password": "long enough", "role": "viewer"},
                       headers=admin.headers).get_json()
    client.patch(f"/api/v1/users/{user['id']}", json={"password": "another long one"},
                 headers=admin.headers)
    client.delete(f"/api/v1/users/{user['id']}", headers=admin.headers)
    client.put("/api/drift/expected/app/prod", json={"expected_version": "v2"},
               headers=operator.headers)
    client.post("/api/v1/enrollment-tokens", json={"uses": 1}, headers=operator.headers)
    client.delete(f"/api/v1/nodes/{node_id}", headers=operator.headers)
    client.post("/api/v1/auth/login", json={"email": "admin@example.test", "password": "no"})

    body = entries(client, admin)
    actions = [e["action"] for e in body["data"] if e["actor"]["kind"] != "system"]
    assert actions == [  # newest first
        "login.failure", "node.delete", "enrollment_token.create", "drift_expected.set",
        "user.delete", "user.update", "user.create", "api_token.revoke", "api_token.create",
        "probe.delete", "probe.update", "probe.create", "node.rotate_token", "node.update",
        "node.create"]
    by_action = {e["action"]: e for e in body["data"]}
    assert by_action["node.rotate_token"]["actor"]["label"] == operator.email
    assert by_action["node.rotate_token"]["object_id"] == node_id
    assert by_action["api_token.create"]["actor"]["kind"] == "user"
    assert by_action["login.failure"]["actor"]["kind"] == "anonymous"
    assert by_action["login.failure"]["remote_addr"] == "127.0.0.1"
    assert by_action["user.update"]["details"] == {"changed": ["password"], "role": "viewer"}
    raw = json.dumps(body)
    assert token["token"] not in raw and "another long one" not in raw
    assert "token_hash" not in raw and "password_hash" not in raw


def test_filters_and_pagination(client, admin, operator, viewer):
    before = entries(client, admin)["pagination"]["total"]  # the personas' creation
    for i in range(3):
        client.post("/api/v1/nodes", json={"name": f"f{i}"}, headers=operator.headers)
    client.post("/api/v1/api-tokens", json={"name": "x", "role": "viewer"},
                headers=admin.headers)
    assert entries(client, admin, actor=operator.email)["pagination"]["total"] == 3
    assert entries(client, admin, action="api_token.create")["pagination"]["total"] == 1
    page = entries(client, admin, per_page=2, page=2)
    assert len(page["data"]) == 2 and page["pagination"]["total"] == before + 4
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert entries(client, admin, **{"from": future})["data"] == []
    assert entries(client, admin, to=future)["pagination"]["total"] == before + 4
    assert_error(client.get(AUDIT, headers=operator.headers), 403, "ERR_FORBIDDEN")
    assert_error(client.get(AUDIT, headers=viewer.headers), 403, "ERR_FORBIDDEN")


def test_the_row_is_written_with_the_change_or_not_at_all(app, monkeypatch):
    """A change whose commit fails leaves no audit row (same transaction), and an audit
    row that cannot be written stops the change."""
    with app.app_context():
        node, _ = node_service.create_node("atomic")
        before = db.session.query(AuditLog).count()

        def failing_commit():
            raise RuntimeError("database gone")

        monkeypatch.setattr(db.session, "commit", failing_commit)
        with pytest.raises(RuntimeError):
            node_service.update_node(node, {"region": "x"})
        monkeypatch.undo()
        db.session.rollback()
        assert db.session.query(AuditLog).count() == before

        monkeypatch.setattr(audit, "_without_secrets", lambda d: {"bad": object()})
        with pytest.raises(Exception):  # noqa: B017 (whatever the JSON encoder raises)
            node_service.update_node(db.session.get(type(node), node.id), {"region": "y"})
        db.session.rollback()
        assert db.session.get(type(node), node.id).region is None


def test_secret_looking_keys_never_reach_details(app):
    with app.app_context():
        audit.record("x.test", "x", None, {"token": "t", "password": "p", "token_hash": "h",
                                           "channel_url": "u", "name": "fine"})
        db.session.commit()
        row = db.session.query(AuditLog).filter_by(action="x.test").one()
        assert row.details == {"name": "fine"}


def test_the_audit_context_ends_with_the_request(app, client, admin):
    """What runs after a request in the same thread (a CLI command, a task) acts as the
    system, not as the request's caller."""
    from app.services import audit

    assert client.get("/api/v1/nodes", headers=admin.headers).status_code == 200
    assert audit.current_actor() == audit.SYSTEM
