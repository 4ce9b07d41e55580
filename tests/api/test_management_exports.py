"""Management gaps of SPEC §5 (enrollment tokens listed and revoked, drift expectations
read and deleted, SDK instances deleted) and the Prometheus export of SPEC §13."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.timeutil import iso_utc
from tests.support.api import assert_error

BEAT = "/api/v1/beacon/heartbeat"


@pytest.fixture
def app(reset_app):
    """A fresh app for each test, without building one (tests.conftest.reset_app)."""
    return reset_app


def test_enrollment_tokens_are_listed_without_the_token_and_revoked(client, operator, admin,
                                                                     viewer):
    made = client.post("/api/v1/enrollment-tokens", json={"uses": 2},
                       headers=operator.headers).get_json()
    listed = client.get("/api/v1/enrollment-tokens", headers=operator.headers)
    [item] = listed.get_json()["data"]
    assert item["id"] == made["id"] and item["uses_left"] == 2 and item["usable"] is True
    assert "token" not in item and made["token"] not in listed.get_data(as_text=True)
    assert item["created_by"] is not None
    assert_error(client.get("/api/v1/enrollment-tokens", headers=viewer.headers),
                 403, "ERR_FORBIDDEN")
    assert client.delete(f"/api/v1/enrollment-tokens/{made['id']}",
                         headers=operator.headers).status_code == 204
    refused = client.post("/api/v1/beacon/register", json={
        "enroll_token": made["token"], "name": "too-late"})
    assert_error(refused, 401, "ERR_INVALID_ENROLLMENT_TOKEN")
    assert_error(client.delete(f"/api/v1/enrollment-tokens/{made['id']}",
                               headers=operator.headers), 404, "ERR_ENROLLMENT_TOKEN_NOT_FOUND")
    actions = [e["action"] for e in client.get("/api/v1/audit-log", headers=admin.headers)
               .get_json()["data"]]
    assert "enrollment_token.revoke" in actions


def test_drift_expectations_are_read_and_deleted(client, operator, viewer, node, admin):
    url = "/api/drift/expected/payments/production"
    assert_error(client.get(url, headers=viewer.headers), 404, "ERR_EXPECTATION_NOT_FOUND")
    client.put(url, json={"expected_version": "v2"}, headers=operator.headers)
    assert client.get(url, headers=viewer.headers).get_json() == {
        "app": "payments", "profile": "production", "expected_version": "v2"}
    report = {"instance_id": "web-1", "config_version": "v1", "health": "healthy"}
    beat = client.post("/api/drift/heartbeat/payments/production", json=report,
                       headers={"Authorization": f"Bearer {node['token']}"}).get_json()
    assert beat["drift_detected"] is True
    assert_error(client.delete(url, headers=viewer.headers), 403, "ERR_FORBIDDEN")
    assert client.delete(url, headers=operator.headers).status_code == 204
    assert_error(client.get(url, headers=viewer.headers), 404, "ERR_EXPECTATION_NOT_FOUND")
    [instance] = client.get("/api/drift/instances?app=payments", headers=viewer.headers
                            ).get_json()["data"]
    assert instance["drift_detected"] is False  # no expectation: nothing to drift from
    actions = [e["action"] for e in client.get("/api/v1/audit-log", headers=admin.headers)
               .get_json()["data"]]
    assert "drift_expected.delete" in actions


def test_an_sdk_instance_is_deleted(client, operator, viewer, node):
    report = {"instance_id": "web-1", "config_version": "v1", "health": "healthy"}
    client.post("/api/drift/heartbeat/payments/production", json=report,
                headers={"Authorization": f"Bearer {node['token']}"})
    url = "/api/drift/instances/payments/production/web-1"
    assert_error(client.delete(url, headers=viewer.headers), 403, "ERR_FORBIDDEN")
    assert client.delete(url, headers=operator.headers).status_code == 204
    assert client.get("/api/drift/instances", headers=viewer.headers).get_json()["data"] == []
    assert_error(client.delete(url, headers=operator.headers), 404, "ERR_INSTANCE_NOT_FOUND")


def families(response) -> dict[str, list]:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    return {f.name: f.samples for f in
            text_string_to_metric_families(response.get_data(as_text=True))}


def test_prometheus_export_of_each_probes_latest_minute(client, operator, viewer, node,
                                                        node_headers, node_probes):
    client.patch(f"/api/v1/probes/{node_probes[0]}", json={"name": "to-paris"},
                 headers=operator.headers)
    now = datetime.now(UTC)
    results = [{"probe_id": node_probes[0], "latency_ms": 20.5, "packet_loss_rate": 10.0,
                "jitter_ms": 1.5, "latency_p95_ms": 24.0, "sent": 10, "received": 9},
               {"probe_id": node_probes[1], "latency_ms": 0.0, "packet_loss_rate": 100.0,
                "jitter_ms": 0.0, "sent": 10, "received": 0,
                "error": "ERR_CONNECTION_REFUSED"}]
    body = {"node_id": node["id"], "timestamp": iso_utc(now), "latency_ms": 20.5,
            "packet_loss_rate": 55.0, "jitter_ms": 1.5, "results": results}
    assert client.post(BEAT, json=body, headers=node_headers).status_code == 200

    seen = families(client.get("/api/v1/prometheus/probes", headers=viewer.headers))
    [latency] = seen["pulse_probe_latency_ms"]
    assert latency.value == 20.5
    assert latency.labels == {"node": node["name"], "node_id": node["id"], "probe": "to-paris",
                              "probe_id": node_probes[0], "type": "TCP"}  # no target
    assert {s.labels["probe_id"]: s.value for s in seen["pulse_probe_loss_ratio"]} == {
        node_probes[0]: 0.1, node_probes[1]: 1.0}           # the dead probe: loss, no latency
    assert [s.value for s in seen["pulse_probe_latency_p95_ms"]] == [24.0]
    assert [s.value for s in seen["pulse_probe_jitter_ms"]] == [1.5]
    [up] = [s for s in seen["pulse_node_up"] if s.labels["node_id"] == node["id"]]
    assert up.value == 1.0
    # what the API answers for the same probe
    live = client.get(f"/api/v1/nodes/{node['id']}/live", headers=viewer.headers).get_json()
    [paris] = [p for p in live["probes"] if p["probe_id"] == node_probes[0]]
    assert paris["points"][-1]["latency_ms"] == latency.value

    operator_view = families(client.get("/api/v1/prometheus/probes", headers=operator.headers))
    [with_target] = operator_view["pulse_probe_latency_ms"]
    assert (with_target.labels["target"], with_target.labels["port"]) == ("192.0.2.1", "80")
    assert_error(client.get("/api/v1/prometheus/probes"), 401, "ERR_UNAUTHORIZED")


def test_prometheus_export_leaves_out_stale_probes(client, viewer, node, node_headers,
                                                   node_probes):
    old = datetime.now(UTC) - timedelta(minutes=10)   # a 60 s probe silent for 10 minutes
    body = {"node_id": node["id"], "timestamp": iso_utc(old), "latency_ms": 5.0,
            "packet_loss_rate": 0.0, "jitter_ms": 0.1,
            "results": [{"probe_id": node_probes[0], "latency_ms": 5.0,
                         "packet_loss_rate": 0.0, "jitter_ms": 0.1}]}
    assert client.post(BEAT, json=body, headers=node_headers).status_code == 200
    seen = families(client.get("/api/v1/prometheus/probes", headers=viewer.headers))
    assert seen.get("pulse_probe_latency_ms", []) == []   # no sample, not a stale one
