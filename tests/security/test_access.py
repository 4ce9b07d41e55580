"""Broken object-level authorisation, mass assignment, expired and garbled tokens (OWASP
API1, API2, API3)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from app.services.principals import ACCESS_SALT
from tests.support.api import assert_error, bearer


def test_a_node_token_acts_only_for_its_own_node(client, node, other_node, node_probes,
                                                 make_heartbeat):
    mine, theirs = bearer(node["token"]), bearer(other_node["token"])
    body = make_heartbeat(node["id"], datetime.now(UTC), node_probes)
    assert_error(client.post("/api/v1/beacon/heartbeat", json=body, headers=theirs), 403,
                 "ERR_NODE_MISMATCH")
    batch = client.post("/api/v1/beacon/heartbeats", json={"heartbeats": [body]},
                        headers=theirs).get_json()
    assert batch["accepted"] == 0 and batch["rejected"][0]["code"] == "ERR_NODE_MISMATCH"
    # its own node_id with the other node's probes: the probes are not its own
    foreign = make_heartbeat(other_node["id"], datetime.now(UTC), node_probes)
    assert_error(client.post("/api/v1/beacon/heartbeat", json=foreign, headers=theirs), 400,
                 "ERR_PROBE_NOT_FOUND")
    config = client.get("/api/v1/beacon/config", headers=theirs).get_json()
    assert config["node_id"] == other_node["id"] and config["probes"] == []
    assert client.get("/api/v1/beacon/config", headers=mine).get_json()["node_id"] == node["id"]


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v1/nodes"), ("GET", "/api/v1/nodes/{id}"), ("PATCH", "/api/v1/nodes/{id}"),
    ("DELETE", "/api/v1/nodes/{id}"), ("POST", "/api/v1/nodes/{id}/token"),
    ("GET", "/api/v1/probes"), ("GET", "/api/v1/users"), ("GET", "/api/v1/audit-log"),
    ("GET", "/api/v1/api-tokens"), ("PUT", "/api/drift/expected/a/b"),
])
def test_a_node_token_is_no_management_bearer(client, node, method, path):
    response = client.open(path.replace("{id}", node["id"]), method=method,
                           json={} if method in ("PATCH", "PUT") else None,
                           headers=bearer(node["token"]))
    assert_error(response, 401, "ERR_UNAUTHORIZED")


def test_roles_cannot_reach_above_themselves(client, operator, viewer, admin):
    assert_error(client.post("/api/v1/api-tokens", json={"name": "x", "role": "admin"},
                             headers=operator.headers), 403, "ERR_FORBIDDEN")
    admin_token = client.post("/api/v1/api-tokens", json={"name": "a", "role": "admin"},
                              headers=admin.headers).get_json()
    assert_error(client.delete(f"/api/v1/api-tokens/{admin_token['id']}",
                               headers=operator.headers), 403, "ERR_FORBIDDEN")
    listed = client.get("/api/v1/api-tokens", headers=operator.headers).get_json()
    assert admin_token["id"] not in {t["id"] for t in listed}
    users = client.get("/api/v1/users", headers=admin.headers).get_json()
    some_user = users[0]["id"]
    for persona in (operator, viewer):
        assert_error(client.patch(f"/api/v1/users/{some_user}", json={"role": "admin"},
                                  headers=persona.headers), 403, "ERR_FORBIDDEN")
        assert_error(client.delete(f"/api/v1/users/{some_user}", headers=persona.headers),
                     403, "ERR_FORBIDDEN")
    assert_error(client.get("/api/v1/probes", headers=viewer.headers), 403, "ERR_FORBIDDEN")


@pytest.mark.parametrize(("path", "body"), [
    ("/api/v1/nodes", {"name": "m1", "id": str(uuid.uuid4())}),
    ("/api/v1/nodes", {"name": "m2", "token_hash": "0" * 64}),
    ("/api/v1/nodes", {"name": "m3", "last_seen_at": "2026-01-01T00:00:00Z"}),
    ("/api/v1/api-tokens", {"name": "m4", "role": "viewer", "token_hash": "0" * 64}),
    ("/api/v1/api-tokens", {"name": "m5", "role": "viewer", "revoked_at": None}),
    ("/api/v1/users", {"email": "m6@example.test", "password": "long enough",
                       "role": "viewer", "id": str(uuid.uuid4())}),
    ("/api/v1/users", {"email": "m7@example.test", "password": "long enough",
                       "role": "viewer", "password_hash": "x"}),
    ("/api/v1/probes", {"node_id": "{node}", "type": "TCP", "target": "example.com",
                        "port": 80, "source": "beacon"}),
])
def test_mass_assignment_is_refused(client, admin, node, path, body):
    body = {k: v.replace("{node}", node["id"]) if isinstance(v, str) else v
            for k, v in body.items()}
    response = client.post(path, json=body, headers=admin.headers)
    assert response.status_code == 400, response.get_json()


def test_role_and_id_in_a_patch_are_refused(client, admin, operator, node):
    me = next(u for u in client.get("/api/v1/users", headers=admin.headers).get_json()
              if u["email"] == operator.email)
    assert client.patch(f"/api/v1/users/{me['id']}", json={"id": str(uuid.uuid4())},
                        headers=admin.headers).status_code == 400
    assert client.patch(f"/api/v1/nodes/{node['id']}", json={"token_hash": "0" * 64},
                        headers=operator.headers).status_code == 400
    assert client.patch(f"/api/v1/nodes/{node['id']}", json={"id": str(uuid.uuid4())},
                        headers=operator.headers).status_code == 400


@pytest.mark.parametrize("token", [
    "", "garbage", "pba_", "pba_" + "A" * 43, "pbn_" + "A" * 43, "pbe_" + "A" * 43,
    "x" * 5000, "eyJ1aWQiOiJ4In0.bad.sig", "\u00e9\u00e9", "pba_\u00e9",
])
def test_garbled_tokens_are_401(client, token):
    response = client.get("/api/v1/nodes", headers={"Authorization": f"Bearer {token}"})
    assert_error(response, 401, "ERR_UNAUTHORIZED")


@pytest.mark.parametrize("header", ["Basic YWRtaW46YWRtaW4=", "Bearer", "Bearer  ", "token x"])
def test_other_schemes_are_401(client, header):
    assert_error(client.get("/api/v1/nodes", headers={"Authorization": header}), 401,
                 "ERR_UNAUTHORIZED")


def test_expired_and_foreign_access_tokens_are_401(app, client, admin):
    from app.extensions import db
    from app.models import User
    from app.services.principals import password_stamp

    with app.app_context():
        user_id = next(u["id"] for u in client.get("/api/v1/users", headers=admin.headers)
                       .get_json() if u["role"] == "admin")
        payload = {"uid": user_id,
                   "pw": password_stamp(db.session.get(User, uuid.UUID(user_id)))}
        signer = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=ACCESS_SALT,
                                        signer_kwargs={"digest_method": None})
        signer.signer = type("Past", (TimestampSigner,), {
            "get_timestamp": lambda self: int(time.time()) - 7200})
        old = signer.dumps(payload)  # signed two hours ago: past its hour
    assert_error(client.get("/api/v1/nodes", headers=bearer(old)), 401, "ERR_UNAUTHORIZED")
    forged = URLSafeTimedSerializer("another-secret", salt=ACCESS_SALT).dumps(payload)
    assert_error(client.get("/api/v1/nodes", headers=bearer(forged)), 401, "ERR_UNAUTHORIZED")
    assert client.get("/api/v1/nodes", headers=admin.headers).status_code == 200


def test_a_revoked_api_token_and_a_rotated_node_token_are_401(client, admin, operator, node):
    created = client.post("/api/v1/api-tokens", json={"name": "r", "role": "viewer"},
                          headers=admin.headers).get_json()
    assert client.get("/api/v1/nodes", headers=bearer(created["token"])).status_code == 200
    client.delete(f"/api/v1/api-tokens/{created['id']}", headers=admin.headers)
    assert_error(client.get("/api/v1/nodes", headers=bearer(created["token"])), 401,
                 "ERR_UNAUTHORIZED")
    client.post(f"/api/v1/nodes/{node['id']}/token", headers=operator.headers)
    assert_error(client.get("/api/v1/beacon/config", headers=bearer(node["token"])), 401,
                 "ERR_UNAUTHORIZED")
