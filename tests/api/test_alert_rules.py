"""/api/v1/alert-rules, /alerts, /alert-events, /silences: roles and validation codes."""

from __future__ import annotations

import uuid

import pytest

UNKNOWN = str(uuid.uuid4())
LOSS = {"name": "loss", "metric": "packet_loss_rate", "op": ">", "threshold": 5}


def post_rule(client, persona, **changes):
    body = {**LOSS, **changes}
    body = {k: v for k, v in body.items() if v is not ...}
    return client.post("/api/v1/alert-rules", json=body, headers=persona.headers)


def test_create_with_defaults(client, operator):
    r = post_rule(client, operator)
    assert r.status_code == 201, r.get_json()
    rule = r.get_json()
    assert {k: rule[k] for k in ("for_minutes", "mode", "severity", "channel_ids",
                                 "repeat_minutes", "enabled", "recovery_threshold")} == {
        "for_minutes": 3, "mode": "static", "severity": "warning", "channel_ids": [],
        "repeat_minutes": None, "enabled": True, "recovery_threshold": None}


@pytest.mark.parametrize("path", ["/api/v1/alert-rules", "/api/v1/alerts",
                                  "/api/v1/alert-events", "/api/v1/silences",
                                  "/api/v1/notification-channels"])
def test_viewer_reads_and_anonymous_is_refused(client, viewer, path):
    assert client.get(path, headers=viewer.headers).status_code == 200
    r = client.get(path)
    assert r.status_code == 401 and r.get_json()["code"] == "ERR_UNAUTHORIZED"


@pytest.mark.parametrize(("path", "body"), [
    ("/api/v1/alert-rules", LOSS),
    ("/api/v1/notification-channels", {"name": "x", "kind": "webhook",
                                       "url": "https://example.com/h"}),
    ("/api/v1/silences", {"starts_at": "2026-01-01T00:00:00Z",
                          "ends_at": "2026-01-02T00:00:00Z"}),
])
def test_viewer_cannot_write(client, viewer, path, body):
    r = client.post(path, json=body, headers=viewer.headers)
    assert r.status_code == 403 and r.get_json()["code"] == "ERR_FORBIDDEN"


@pytest.mark.parametrize(("changes", "field"), [
    ({"metric": "cpu"}, "metric"),
    ({"op": "=="}, "op"),
    ({"threshold": "5"}, "threshold"),
    ({"threshold": True}, "threshold"),
    ({"for_minutes": 0}, "for_minutes"),
    ({"for_minutes": "3"}, "for_minutes"),
    ({"severity": "page"}, "severity"),
    ({"mode": "smart"}, "mode"),
    ({"channel_ids": ["not-a-uuid"]}, "channel_ids"),
    ({"repeat_minutes": 0}, "repeat_minutes"),
    ({"enabled": "yes"}, "enabled"),
    ({"name": ""}, "name"),
    ({"threshold": None}, "threshold"),  # required for a probe metric
    ({"op": ...}, "op"),
    ({"mode": "baseline"}, "mode"),  # baseline only for latency and jitter
    ({"recovery_threshold": 8}, "recovery_threshold"),  # on the firing side of > 5
    ({"metric": "node_offline"}, "op"),  # node_offline takes no op/threshold
])
def test_one_failing_field_answers_err_invalid_rule(client, operator, changes, field):
    r = post_rule(client, operator, **changes)
    assert r.status_code == 400, r.get_json()
    body = r.get_json()
    assert body["code"] == "ERR_INVALID_RULE", body
    assert list(body["details"]["fields"]) == [field]


def test_several_failing_fields_answer_err_validation(client, operator):
    r = post_rule(client, operator, op="==", for_minutes=0)
    assert r.status_code == 400
    body = r.get_json()
    assert body["code"] == "ERR_VALIDATION"
    assert set(body["details"]["fields"]) == {"op", "for_minutes"}


@pytest.mark.parametrize(("changes", "code"), [
    ({"channel_ids": [UNKNOWN]}, "ERR_CHANNEL_NOT_FOUND"),
    ({"node_id": UNKNOWN}, "ERR_NODE_NOT_FOUND"),
    ({"probe_id": UNKNOWN}, "ERR_PROBE_NOT_FOUND"),
])
def test_unknown_references(client, operator, changes, code):
    r = post_rule(client, operator, **changes)
    assert r.status_code == 400 and r.get_json()["code"] == code


def test_recovery_below_a_below_rule_is_refused_and_the_right_side_accepted(client, operator):
    assert post_rule(client, operator, op="<", threshold=10,
                     recovery_threshold=5).get_json()["code"] == "ERR_INVALID_RULE"
    assert post_rule(client, operator, op="<", threshold=10,
                     recovery_threshold=15).status_code == 201
    assert post_rule(client, operator, recovery_threshold=2).status_code == 201


def test_baseline_and_node_and_drift_rules(client, operator, node, probe):
    assert post_rule(client, operator, metric="latency_ms", mode="baseline",
                     threshold=2).status_code == 201
    assert post_rule(client, operator, metric="node_offline", op=..., threshold=...,
                     node_id=node["id"]).status_code == 201
    assert post_rule(client, operator, metric="drift", op=..., threshold=...).status_code == 201
    r = post_rule(client, operator, metric="drift", op=..., threshold=..., node_id=node["id"])
    assert r.get_json()["code"] == "ERR_INVALID_RULE"
    assert post_rule(client, operator, probe_id=probe["id"],
                     node_id=node["id"]).status_code == 201


def test_get_put_patch_delete(client, operator, viewer):
    rule = post_rule(client, operator).get_json()
    path = f"/api/v1/alert-rules/{rule['id']}"
    assert client.get(path, headers=viewer.headers).get_json()["name"] == "loss"
    r = client.patch(path, json={"threshold": 10, "for_minutes": 5}, headers=operator.headers)
    assert r.status_code == 200 and (r.get_json()["threshold"], r.get_json()["op"]) == (10, ">")
    # a patch is checked as the whole rule it makes
    r = client.patch(path, json={"recovery_threshold": 20}, headers=operator.headers)
    assert r.get_json()["code"] == "ERR_INVALID_RULE"
    r = client.put(path, json={**LOSS, "name": "again"}, headers=operator.headers)
    assert r.status_code == 200 and r.get_json()["for_minutes"] == 3
    assert client.patch(path, json={"name": "x"}, headers=viewer.headers).status_code == 403
    assert client.delete(path, headers=operator.headers).status_code == 204
    r = client.get(path, headers=viewer.headers)
    assert r.status_code == 404 and r.get_json()["code"] == "ERR_RULE_NOT_FOUND"
    assert client.get("/api/v1/alert-rules/nope", headers=viewer.headers).status_code == 404


def test_alert_filters_are_validated(client, viewer):
    r = client.get("/api/v1/alerts?state=broken", headers=viewer.headers)
    assert r.status_code == 400 and r.get_json()["code"] == "ERR_VALIDATION"
    r = client.get("/api/v1/alert-events?from=yesterday", headers=viewer.headers)
    assert r.status_code == 400 and r.get_json()["code"] == "ERR_INVALID_TIMESTAMP"


def test_silences(client, operator, viewer, node):
    r = client.post("/api/v1/silences", json={
        "node_id": node["id"], "starts_at": "2026-01-01T00:00:00Z",
        "ends_at": "2099-01-01T00:00:00Z", "comment": "move"}, headers=operator.headers)
    assert r.status_code == 201, r.get_json()
    silence = r.get_json()
    listed = client.get("/api/v1/silences", headers=viewer.headers).get_json()["data"]
    assert [s["id"] for s in listed] == [silence["id"]]
    r = client.post("/api/v1/silences", json={
        "starts_at": "2026-01-02T00:00:00Z", "ends_at": "2026-01-01T00:00:00Z"},
        headers=operator.headers)
    assert r.status_code == 400 and r.get_json()["code"] == "ERR_INVALID_SILENCE"
    r = client.post("/api/v1/silences", json={
        "rule_id": UNKNOWN, "starts_at": "2026-01-01T00:00:00Z",
        "ends_at": "2026-01-02T00:00:00Z"}, headers=operator.headers)
    assert r.status_code == 400 and r.get_json()["code"] == "ERR_RULE_NOT_FOUND"
    assert client.delete(f"/api/v1/silences/{silence['id']}",
                         headers=viewer.headers).status_code == 403
    assert client.delete(f"/api/v1/silences/{silence['id']}",
                         headers=operator.headers).status_code == 204
    assert client.get("/api/v1/silences", headers=viewer.headers).get_json()["data"] == []
