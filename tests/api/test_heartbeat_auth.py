"""Who may post a heartbeat, and the order of the checks (SPEC §5 Beacon-facing):
token (401) → node_id matches the token (403) → body shape and ranges (400) → probe
ownership (400)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.support.api import assert_error, bearer

URL = "/api/v1/beacon/heartbeat"


@pytest.fixture
def app(reset_app):
    """A fresh app for each test, without building one (tests.conftest.reset_app)."""
    return reset_app




@pytest.fixture
def body(node, node_probes, make_heartbeat):
    return make_heartbeat(node["id"], datetime.now(UTC), node_probes)


@pytest.fixture
def shared_body(shared_beacon, make_heartbeat):
    """A valid heartbeat of `shared_beacon` (tables of cases that store nothing)."""
    return make_heartbeat(shared_beacon["id"], datetime.now(UTC), shared_beacon["probes"])


def test_valid_node_token_is_accepted(client, node_headers, body):
    response = client.post(URL, json=body, headers=node_headers)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["accepted"] == 3


def test_missing_token_is_401(client, body):
    response = client.post(URL, json=body)
    assert_error(response, 401, "ERR_UNAUTHORIZED")
    assert response.headers.get("WWW-Authenticate", "").startswith("Bearer")


@pytest.mark.parametrize("header", [
    "Bearer pbn_" + "x" * 43,        # node-token shaped, unknown
    "Bearer garbage",
    "Bearer ",
    "Basic dXNlcjpwYXNz",
    "pbn_nobearerscheme",
], ids=["unknown-node-token", "garbage", "empty", "basic", "no-scheme"])
def test_garbage_token_is_401(shared_client, shared_body, header):
    assert_error(shared_client.post(URL, json=shared_body, headers={"Authorization": header}),
                 401, "ERR_UNAUTHORIZED")


def test_user_access_token_cannot_post_heartbeats(client, body, admin, operator, viewer):
    for persona in (admin, operator, viewer):
        assert_error(client.post(URL, json=body, headers=persona.headers),
                     401, "ERR_UNAUTHORIZED")


def test_api_token_cannot_post_heartbeats(client, body, admin):
    created = client.post("/api/v1/api-tokens", json={"name": "automation", "role": "admin"},
                          headers=admin.headers)
    assert created.status_code == 201, created.get_json()
    token = created.get_json()["token"]
    assert_error(client.post(URL, json=body, headers=bearer(token)), 401, "ERR_UNAUTHORIZED")


def test_another_nodes_token_is_403_node_mismatch(client, body, other_node):
    response = client.post(URL, json=body, headers=bearer(other_node["token"]))
    assert_error(response, 403, "ERR_NODE_MISMATCH")


@pytest.mark.parametrize("node_id", ["not-a-uuid", "1234", "", 42, "g" * 32])
def test_malformed_node_id_is_400_invalid_node_id(shared_client, shared_beacon, shared_body,
                                                  node_id):
    shared_body["node_id"] = node_id
    assert_error(shared_client.post(URL, json=shared_body, headers=shared_beacon["headers"]),
                 400, "ERR_INVALID_NODE_ID")


@pytest.mark.parametrize("how", ["absent", "null"])
def test_missing_node_id_is_400_invalid_node_id(client, node_headers, body, how):
    if how == "absent":
        del body["node_id"]
    else:
        body["node_id"] = None
    error = assert_error(client.post(URL, json=body, headers=node_headers),
                         400, "ERR_INVALID_NODE_ID")
    assert "node_id" in error["details"]["fields"]


# --- the order of the checks -------------------------------------------------------------


def test_token_is_checked_before_node_id(client, body, other_node):
    body["node_id"] = other_node["id"]
    body["latency_ms"] = -1
    assert_error(client.post(URL, json=body), 401, "ERR_UNAUTHORIZED")
    assert_error(client.post(URL, json=body, headers=bearer("pbn_unknown")),
                 401, "ERR_UNAUTHORIZED")


def test_token_is_checked_before_the_body_is_read(client):
    for url in (URL, "/api/v1/beacon/heartbeats"):
        response = client.post(url, data="{not json", content_type="application/json")
        assert_error(response, 401, "ERR_UNAUTHORIZED")


def test_node_id_is_checked_before_body_shape(client, node_headers, body, other_node,
                                              other_probe):
    body["node_id"] = other_node["id"]
    body["latency_ms"] = -1
    body["timestamp"] = "yesterday"
    body["results"][0]["probe_id"] = other_probe["id"]
    assert_error(client.post(URL, json=body, headers=node_headers), 403, "ERR_NODE_MISMATCH")


def test_body_shape_is_checked_before_probe_ownership(client, node_headers, body, other_probe):
    body["results"][0]["probe_id"] = other_probe["id"]
    body["results"][1]["latency_ms"] = 60000.01
    assert_error(client.post(URL, json=body, headers=node_headers), 400, "ERR_INVALID_METRICS")


def test_foreign_probe_is_400_probe_not_found(client, node_headers, body, other_probe):
    body["results"][0]["probe_id"] = other_probe["id"]
    error = assert_error(client.post(URL, json=body, headers=node_headers),
                         400, "ERR_PROBE_NOT_FOUND")
    assert other_probe["id"] in error["message"]


def test_unknown_probe_is_400_probe_not_found(client, node_headers, body):
    body["results"][0]["probe_id"] = "00000000-0000-4000-8000-000000000000"
    assert_error(client.post(URL, json=body, headers=node_headers), 400, "ERR_PROBE_NOT_FOUND")


def test_foreign_probe_in_single_probe_form_is_400(client, node_headers, body, other_probe):
    del body["results"]
    body["probe_id"] = other_probe["id"]
    assert_error(client.post(URL, json=body, headers=node_headers), 400, "ERR_PROBE_NOT_FOUND")


def test_nothing_is_stored_when_a_probe_is_foreign(app, client, node_headers, body,
                                                   other_probe):
    from app.extensions import get_redis
    from app.history.pending import pending_length

    body["results"][0]["probe_id"] = other_probe["id"]
    client.post(URL, json=body, headers=node_headers)
    with app.app_context():
        handle = get_redis()
        assert pending_length(handle.client, handle.prefix) == 0
        assert not handle.client.keys(f"{handle.prefix}:live:*")


# --- token lifecycle ---------------------------------------------------------------------


def test_rotated_token_stops_working_at_once(client, operator, node, node_headers, body):
    # the old token is used first, so whatever caches it is warm
    assert client.post(URL, json=body, headers=node_headers).status_code == 200
    rotated = client.post(f"/api/v1/nodes/{node['id']}/token", headers=operator.headers)
    assert rotated.status_code == 200, rotated.get_json()
    new_token = rotated.get_json()["token"]
    assert new_token and new_token != node["token"]

    assert_error(client.post(URL, json=body, headers=node_headers), 401, "ERR_UNAUTHORIZED")
    assert_error(client.get("/api/v1/beacon/config", headers=node_headers),
                 401, "ERR_UNAUTHORIZED")
    assert client.post(URL, json=body, headers=bearer(new_token)).status_code == 200


def test_deleted_nodes_token_stops_working_at_once(client, operator, node, node_headers, body):
    assert client.post(URL, json=body, headers=node_headers).status_code == 200
    deleted = client.delete(f"/api/v1/nodes/{node['id']}?confirm=true", headers=operator.headers)
    assert deleted.status_code == 204
    assert_error(client.post(URL, json=body, headers=node_headers), 401, "ERR_UNAUTHORIZED")
    assert_error(client.get("/api/v1/beacon/config", headers=node_headers),
                 401, "ERR_UNAUTHORIZED")


def test_other_nodes_token_keeps_working_after_a_rotation(client, operator, node, other_node,
                                                          make_heartbeat):
    other_body = make_heartbeat(other_node["id"], datetime.now(UTC))
    assert client.post(URL, json=other_body,
                       headers=bearer(other_node["token"])).status_code == 200
    client.post(f"/api/v1/nodes/{node['id']}/token", headers=operator.headers)
    assert client.post(URL, json=other_body,
                       headers=bearer(other_node["token"])).status_code == 200
