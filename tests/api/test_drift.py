"""Drift server side: SDK heartbeats, expectations, instance listing."""

from __future__ import annotations

import pytest


@pytest.fixture
def reporter_token(client, admin):
    r = client.post("/api/v1/api-tokens", json={"name": "sdk", "role": "operator"},
                    headers=admin.headers)
    assert r.status_code == 201
    return {"Authorization": f"Bearer {r.get_json()['token']}"}


def beat(version="v1", instance="i-1", **extra):
    return {"instance_id": instance, "config_version": version, "health": "healthy", **extra}


def test_first_heartbeat_registers_and_no_expectation_is_no_drift(client, reporter_token):
    r = client.post("/api/drift/heartbeat/payments/production", json=beat(),
                    headers=reporter_token)
    assert r.status_code == 200, r.get_json()
    assert r.get_json() == {"registered": True, "expected_version": None,
                            "drift_detected": False}
    again = client.post("/api/drift/heartbeat/payments/production", json=beat(),
                        headers=reporter_token).get_json()
    assert again["registered"] is False


def test_drift_against_expected_version(client, reporter_token, operator, viewer):
    r = client.put("/api/drift/expected/payments/production", json={"expected_version": "v2"},
                   headers=operator.headers)
    assert r.status_code == 200
    answer = client.post("/api/drift/heartbeat/payments/production", json=beat("v1"),
                         headers=reporter_token).get_json()
    assert answer == {"registered": True, "expected_version": "v2", "drift_detected": True}
    client.post("/api/drift/heartbeat/payments/production",
                json=beat("v2", instance="i-2", kubernetes_pod="pod-2"), headers=reporter_token)
    listing = client.get("/api/drift/instances?app=payments", headers=viewer.headers).get_json()
    by_id = {i["instance_id"]: i for i in listing["data"]}
    assert by_id["i-1"]["drift_detected"] is True
    assert by_id["i-2"]["drift_detected"] is False
    assert by_id["i-2"]["kubernetes_pod"] == "pod-2"
    assert by_id["i-1"]["stale"] is False


def test_stale_instances(app, client, reporter_token, viewer):
    client.post("/api/drift/heartbeat/a/b", json=beat(), headers=reporter_token)
    app.config["PULSE_DRIFT_STALE_SECONDS"] = 0
    listing = client.get("/api/drift/instances", headers=viewer.headers).get_json()
    assert listing["data"][0]["stale"] is True


def test_drift_auth(client, viewer, node):
    url = "/api/drift/heartbeat/a/b"
    assert client.post(url, json=beat()).status_code == 401
    assert client.post(url, json=beat(), headers=viewer.headers).status_code == 403
    node_headers = {"Authorization": f"Bearer {node['token']}"}
    assert client.post(url, json=beat(), headers=node_headers).status_code == 200
    assert client.put("/api/drift/expected/a/b", json={"expected_version": "x"},
                      headers=viewer.headers).status_code == 403
    # auth is judged before the body
    assert client.post(url, json={}).status_code == 401
    bad = client.post(url, json={"config_version": "v"}, headers=node_headers)
    assert bad.status_code == 400
    assert bad.get_json()["code"] == "ERR_VALIDATION"
