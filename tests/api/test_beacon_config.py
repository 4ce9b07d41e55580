"""Beacon registration, GET /api/v1/beacon/config and PUT /api/v1/beacon/probes (SPEC §5)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from app.extensions import db
from app.models import EnrollmentToken, Probe
from tests.support.api import bearer

CONFIG = "/api/v1/beacon/config"
DECLARE = "/api/v1/beacon/probes"
REGISTER = "/api/v1/beacon/register"


@pytest.fixture
def app(reset_app):
    """A fresh app for each test, without building one (tests.conftest.reset_app)."""
    return reset_app



def enrollment_token(client, operator, uses: int = 1, expires_in_seconds: int = 3600) -> str:
    response = client.post("/api/v1/enrollment-tokens", json={
        "uses": uses, "expires_in_seconds": expires_in_seconds}, headers=operator.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["token"]


def version(client, headers) -> str:
    response = client.get(CONFIG, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["config_version"]


def add_probe(client, operator, node_id: str, port: int, **extra) -> dict:
    response = client.post("/api/v1/probes", json={
        "node_id": node_id, "type": "TCP", "target": "192.0.2.1", "port": port, **extra,
    }, headers=operator.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def declared(type_="TCP", target="192.0.2.10", port=80, **settings) -> dict:
    return {"type": type_, "target": target, "port": port, **settings}


# --- registration ----------------------------------------------------------------------------


def test_register_with_an_enrollment_token(client, operator):
    token = enrollment_token(client, operator)
    response = client.post(REGISTER, json={
        "enroll_token": token, "name": "beacon-1",
        "metadata": {"hostname": "probe-host", "ip_address": "192.0.2.5", "region": "eu"}})
    answer = response.get_json()
    assert response.status_code == 201, answer
    assert set(answer) == {"node_id", "token"}
    config = client.get(CONFIG, headers=bearer(answer["token"]))
    assert config.status_code == 200, config.get_json()
    assert config.get_json()["node_id"] == answer["node_id"]
    assert config.get_json()["probes"] == []

    node = client.get(f"/api/v1/nodes/{answer['node_id']}", headers=operator.headers).get_json()
    assert node["name"] == "beacon-1"
    assert node["hostname"] == "probe-host"
    assert "token" not in node


def test_enrollment_token_uses_run_out(client, operator):
    token = enrollment_token(client, operator, uses=2)
    for name in ("b-1", "b-2"):
        assert client.post(REGISTER, json={"enroll_token": token, "name": name}).status_code == 201
    refused = client.post(REGISTER, json={"enroll_token": token, "name": "b-3"})
    assert refused.status_code == 401, refused.get_json()
    assert refused.get_json()["code"] == "ERR_INVALID_ENROLLMENT_TOKEN"


def test_expired_enrollment_token_is_refused(app, client, operator):
    token = enrollment_token(client, operator, uses=5)
    with app.app_context():
        db.session.execute(update(EnrollmentToken).values(
            expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        db.session.commit()
    refused = client.post(REGISTER, json={"enroll_token": token, "name": "late"})
    assert refused.status_code == 401, refused.get_json()
    assert refused.get_json()["code"] == "ERR_INVALID_ENROLLMENT_TOKEN"


@pytest.mark.parametrize("token", ["pbe_unknown", "x"])
def test_unknown_enrollment_token_is_refused(shared_client, token):
    refused = shared_client.post(REGISTER, json={"enroll_token": token, "name": "nobody"})
    assert refused.status_code == 401
    assert refused.get_json()["code"] == "ERR_INVALID_ENROLLMENT_TOKEN"


def test_node_token_is_not_an_enrollment_token(client, node):
    refused = client.post(REGISTER, json={"enroll_token": node["token"], "name": "sneaky"})
    assert refused.status_code == 401


def test_register_with_a_taken_name_is_409_and_spends_no_use(client, operator, node):
    token = enrollment_token(client, operator, uses=1)
    taken = client.post(REGISTER, json={"enroll_token": token, "name": node["name"]})
    assert taken.status_code == 409, taken.get_json()
    assert taken.get_json()["code"] == "ERR_NODE_EXISTS"
    assert client.post(REGISTER, json={"enroll_token": token, "name": "free"}).status_code == 201


@pytest.mark.parametrize("body", [{}, {"name": "x"}, {"enroll_token": "pbe_x"},
                                  {"enroll_token": "pbe_x", "name": ""}])
def test_register_body_is_validated(shared_client, body):
    response = shared_client.post(REGISTER, json=body)
    assert response.status_code == 400, response.get_json()


# --- GET /beacon/config ----------------------------------------------------------------------


def test_config_lists_only_enabled_probes(client, operator, node, node_headers):
    on = add_probe(client, operator, node["id"], 80, interval_seconds=120, count=5,
                   timeout_seconds=3)
    add_probe(client, operator, node["id"], 81, enabled=False)
    response = client.get(CONFIG, headers=node_headers)
    answer = response.get_json()
    assert response.status_code == 200, answer
    assert set(answer) == {"node_id", "config_version", "probes"}
    assert answer["node_id"] == node["id"]
    assert answer["probes"] == [{
        "id": on["id"], "type": "TCP", "target": "192.0.2.1", "port": 80,
        "interval_seconds": 120, "count": 5, "timeout_seconds": 3, "enabled": True}]


def test_config_shows_only_the_tokens_node(client, operator, node, other_node):
    add_probe(client, operator, other_node["id"], 80)
    answer = client.get(CONFIG, headers=bearer(node["token"])).get_json()
    assert answer["node_id"] == node["id"] and answer["probes"] == []


def test_config_needs_a_node_token(client, admin):
    assert client.get(CONFIG).status_code == 401
    assert client.get(CONFIG, headers=admin.headers).status_code == 401


def test_etag_is_the_config_version_and_if_none_match_answers_304(client, node_headers,
                                                                   node_probes):
    first = client.get(CONFIG, headers=node_headers)
    cv = first.get_json()["config_version"]
    assert first.headers["ETag"] == f'"{cv}"'
    assert first.get_etag() == (cv, False)

    cached = client.get(CONFIG, headers={**node_headers, "If-None-Match": f'"{cv}"'})
    assert cached.status_code == 304
    assert cached.data == b""
    assert cached.get_etag() == (cv, False)

    listed = client.get(CONFIG, headers={**node_headers,
                                         "If-None-Match": f'"cv-other", "{cv}"'})
    assert listed.status_code == 304

    stale = client.get(CONFIG, headers={**node_headers, "If-None-Match": '"cv-stale"'})
    assert stale.status_code == 200
    assert stale.get_json()["config_version"] == cv


def test_if_none_match_uses_the_weak_comparison(client, node_headers, node_probes):
    """RFC 9110 §13.1.2: If-None-Match compares weakly, so a proxy that weakened the ETag
    (gzip does) still gets its 304; `*` matches any current config."""
    cv = version(client, node_headers)
    weak = client.get(CONFIG, headers={**node_headers, "If-None-Match": f'W/"{cv}"'})
    assert weak.status_code == 304
    star = client.get(CONFIG, headers={**node_headers, "If-None-Match": "*"})
    assert star.status_code == 304


def test_config_version_follows_every_change_to_the_probe_set(client, operator, node,
                                                              node_headers, other_node):
    empty = version(client, node_headers)
    assert version(client, node_headers) == empty  # nothing changed

    probe = add_probe(client, operator, node["id"], 80)
    added = version(client, node_headers)
    assert added != empty

    # nothing that matters changed: a rename, another node's probe, the node's region
    client.patch(f"/api/v1/probes/{probe['id']}", json={"port": 80}, headers=operator.headers)
    add_probe(client, operator, other_node["id"], 80)
    client.patch(f"/api/v1/nodes/{node['id']}", json={"region": "ap-south"},
                 headers=operator.headers)
    assert version(client, node_headers) == added

    changed = client.patch(f"/api/v1/probes/{probe['id']}", json={"interval_seconds": 300},
                           headers=operator.headers)
    assert changed.status_code == 200, changed.get_json()
    after_change = version(client, node_headers)
    assert after_change not in (empty, added)

    disabled = client.patch(f"/api/v1/probes/{probe['id']}", json={"enabled": False},
                            headers=operator.headers)
    assert disabled.status_code == 200
    after_disable = version(client, node_headers)
    assert after_disable != after_change

    client.patch(f"/api/v1/probes/{probe['id']}", json={"enabled": True},
                 headers=operator.headers)
    assert version(client, node_headers) == after_change

    deleted = client.delete(f"/api/v1/probes/{probe['id']}?confirm=true",
                            headers=operator.headers)
    assert deleted.status_code == 204
    assert version(client, node_headers) not in (added, after_change)


# --- heartbeat answer and cache invalidation -------------------------------------------------


def _beat_version(client, node, node_headers, make_heartbeat) -> str:
    body = make_heartbeat(node["id"], datetime.now(UTC))
    response = client.post("/api/v1/beacon/heartbeat", json=body, headers=node_headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["config_version"]


def test_heartbeat_answer_tracks_config_changes_at_once(client, operator, node, node_headers,
                                                        make_heartbeat):
    assert _beat_version(client, node, node_headers, make_heartbeat) == version(
        client, node_headers)
    probe = add_probe(client, operator, node["id"], 80)
    assert _beat_version(client, node, node_headers, make_heartbeat) == version(
        client, node_headers)

    client.patch(f"/api/v1/probes/{probe['id']}", json={"count": 20}, headers=operator.headers)
    assert _beat_version(client, node, node_headers, make_heartbeat) == version(
        client, node_headers)

    client.patch(f"/api/v1/probes/{probe['id']}", json={"enabled": False},
                 headers=operator.headers)
    assert _beat_version(client, node, node_headers, make_heartbeat) == version(
        client, node_headers)

    declared_answer = client.put(DECLARE, json={"probes": [declared()]}, headers=node_headers)
    assert _beat_version(client, node, node_headers, make_heartbeat) == declared_answer.get_json()[
        "config_version"] == version(client, node_headers)

    client.delete(f"/api/v1/probes/{probe['id']}?confirm=true", headers=operator.headers)
    assert _beat_version(client, node, node_headers, make_heartbeat) == version(
        client, node_headers)


def test_a_new_probe_is_accepted_in_heartbeats_at_once(client, operator, node, node_headers,
                                                       make_heartbeat):
    _beat_version(client, node, node_headers, make_heartbeat)  # warm the node cache
    probe = add_probe(client, operator, node["id"], 80)
    body = make_heartbeat(node["id"], datetime.now(UTC), [probe["id"]])
    response = client.post("/api/v1/beacon/heartbeat", json=body, headers=node_headers)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["accepted"] == 1

    client.delete(f"/api/v1/probes/{probe['id']}?confirm=true", headers=operator.headers)
    response = client.post("/api/v1/beacon/heartbeat", json=body, headers=node_headers)
    assert response.status_code == 400
    assert response.get_json()["code"] == "ERR_PROBE_NOT_FOUND"


# --- PUT /beacon/probes ------------------------------------------------------------------------


def test_declare_probes_creates_them_and_returns_ids(app, client, node, node_headers):
    response = client.put(DECLARE, json={"probes": [
        declared(port=80), declared(type_="udp", port=53, interval_seconds=120)]},
        headers=node_headers)
    answer = response.get_json()
    assert response.status_code == 200, answer
    assert set(answer) == {"config_version", "probes"}
    assert answer["config_version"] == version(client, node_headers)
    assert [(p["type"], p["port"], p["interval_seconds"]) for p in answer["probes"]] == [
        ("TCP", 80, 60), ("UDP", 53, 120)]
    assert all(p["id"] for p in answer["probes"])
    config = client.get(CONFIG, headers=node_headers).get_json()
    assert {p["id"] for p in config["probes"]} == {p["id"] for p in answer["probes"]}
    with app.app_context():
        assert {p.source for p in db.session.scalars(select(Probe))} == {"beacon"}


def test_declare_probes_upserts_by_type_target_port(client, node_headers):
    first = client.put(DECLARE, json={"probes": [declared(port=80), declared(port=443)]},
                       headers=node_headers).get_json()
    ids = {p["port"]: p["id"] for p in first["probes"]}

    same = client.put(DECLARE, json={"probes": [declared(port=80), declared(port=443)]},
                      headers=node_headers).get_json()
    assert {p["port"]: p["id"] for p in same["probes"]} == ids
    assert same["config_version"] == first["config_version"]

    changed = client.put(DECLARE, json={"probes": [declared(port=80, count=50),
                                                   declared(port=443)]},
                         headers=node_headers).get_json()
    assert {p["port"]: p["id"] for p in changed["probes"]} == ids
    assert [p["count"] for p in changed["probes"]] == [50, 10]
    assert changed["config_version"] != first["config_version"]


def test_declare_probes_deletes_undeclared_beacon_probes(client, node_headers):
    first = client.put(DECLARE, json={"probes": [declared(port=80), declared(port=443)]},
                       headers=node_headers).get_json()
    kept = client.put(DECLARE, json={"probes": [declared(port=443)]},
                      headers=node_headers).get_json()
    assert [p["port"] for p in kept["probes"]] == [443]
    config = client.get(CONFIG, headers=node_headers).get_json()
    assert [p["port"] for p in config["probes"]] == [443]
    assert config["probes"][0]["id"] == first["probes"][1]["id"]

    emptied = client.put(DECLARE, json={"probes": []}, headers=node_headers).get_json()
    assert emptied["probes"] == []
    assert client.get(CONFIG, headers=node_headers).get_json()["probes"] == []


def test_declare_probes_never_touches_api_probes(app, client, operator, node, node_headers):
    api_probe = add_probe(client, operator, node["id"], 8080, interval_seconds=300)
    client.put(DECLARE, json={"probes": [declared(port=80)]}, headers=node_headers)
    client.put(DECLARE, json={"probes": []}, headers=node_headers)
    still = client.get(f"/api/v1/probes/{api_probe['id']}", headers=operator.headers)
    assert still.status_code == 200

    # declaring the api probe's key answers that probe and leaves its settings alone
    answer = client.put(DECLARE, json={"probes": [declared(target="192.0.2.1", port=8080,
                                                           interval_seconds=60)]},
                        headers=node_headers).get_json()
    assert [p["id"] for p in answer["probes"]] == [api_probe["id"]]
    with app.app_context():
        probe = db.session.get(Probe, uuid.UUID(api_probe["id"]))
        assert (probe.source, probe.interval_seconds) == ("api", 300)
    client.put(DECLARE, json={"probes": []}, headers=node_headers)
    assert client.get(f"/api/v1/probes/{api_probe['id']}",
                      headers=operator.headers).status_code == 200


def test_declare_probes_only_touches_the_tokens_node(client, node_headers, other_node):
    other_headers = bearer(other_node["token"])
    theirs = client.put(DECLARE, json={"probes": [declared(port=80)]},
                        headers=other_headers).get_json()
    client.put(DECLARE, json={"probes": []}, headers=node_headers)
    config = client.get(CONFIG, headers=other_headers).get_json()
    assert [p["id"] for p in config["probes"]] == [theirs["probes"][0]["id"]]


@pytest.mark.parametrize("probe,code", [
    (declared(port=70000), "ERR_INVALID_PORT"),
    (declared(port=0), "ERR_INVALID_PORT"),
    (declared(port="80"), "ERR_INVALID_PORT"),
    (declared(type_="ICMP"), "ERR_INVALID_PROBE_TYPE"),
    (declared(target="256.1.1.1"), "ERR_INVALID_TARGET"),
    (declared(interval_seconds=59), "ERR_INVALID_INTERVAL"),
    (declared(count=101), "ERR_INVALID_COUNT"),
    (declared(timeout_seconds=31), "ERR_INVALID_TIMEOUT"),
])
def test_declared_probes_are_validated(shared_client, shared_beacon, probe, code):
    headers = shared_beacon["headers"]
    response = shared_client.put(DECLARE, json={"probes": [declared(port=22), probe]},
                                 headers=headers)
    answer = response.get_json()
    assert response.status_code == 400, answer
    assert answer["code"] == code
    assert any(name.startswith("probes.1.") for name in answer["details"]["fields"])
    probes = shared_client.get(CONFIG, headers=headers).get_json()["probes"]
    assert [p["id"] for p in probes] == shared_beacon["probes"]  # nothing declared


@pytest.mark.parametrize("body", [{}, {"probes": "x"}, {"probes": [1]}])
def test_declare_body_is_validated(shared_client, shared_beacon, body):
    assert shared_client.put(DECLARE, json=body,
                             headers=shared_beacon["headers"]).status_code == 400


def test_declare_needs_a_node_token(client, admin):
    assert client.put(DECLARE, json={"probes": []}).status_code == 401
    assert client.put(DECLARE, json={"probes": []}, headers=admin.headers).status_code == 401
