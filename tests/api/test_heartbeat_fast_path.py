"""The heartbeat fast path (app/api/beacon/fast_path.py) answers exactly what the Flask
view answers: it serves accepted heartbeats itself and hands everything else to the view."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from app.api.beacon import resources as beacon_resources
from app.api.beacon.schemas import BatchAnswerSchema, HeartbeatAnswerSchema
from app.ingest import fast_path
from tests.support.api import assert_error

URL = "/api/v1/beacon/heartbeat"


@pytest.fixture
def app(reset_app):
    return reset_app


def _without_fast_path(app):
    """The same app, its requests going straight to Flask."""
    assert isinstance(app.wsgi_app, fast_path.HeartbeatFastPath)
    return app.wsgi_app.wsgi_app


def _answer(response) -> tuple:
    body = response.get_json()
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k != "timestamp"}
    headers = sorted((k, v) for k, v in response.headers.items() if k != "Content-Length")
    return response.status_code, body, headers, response.data.endswith(b"\n")


def _cases(node, node_probes, other_node, other_probe, make_heartbeat):
    now = datetime.now(UTC)
    good = make_heartbeat(node["id"], now, node_probes)
    token = {"Authorization": f"Bearer {node['token']}"}
    raw = {"content_type": "application/json", "headers": token}
    return {
        "accepted": ({"json": good, "headers": token}),
        "re-sent": ({"json": good, "headers": token}),
        "single probe form": ({"json": make_heartbeat(
            node["id"], now - timedelta(seconds=30), probe_id=node_probes[0]),
            "headers": token}),
        "no drift": ({"json": {**good, "config_version": None}, "headers": token}),
        "content type with charset": ({"data": json.dumps(good),
                                       "content_type": "application/json; charset=utf-8",
                                       "headers": token}),
        "missing token": ({"json": good}),
        "user-style bearer": ({"json": good, "headers": {"Authorization": "Bearer nope"}}),
        "basic auth": ({"json": good, "headers": {"Authorization": "Basic eDp5"}}),
        "other node's id": ({"json": {**good, "node_id": other_node["id"]}, "headers": token}),
        "malformed node id": ({"json": {**good, "node_id": "xyz"}, "headers": token}),
        "foreign probe": ({"json": make_heartbeat(node["id"], now, [other_probe["id"]]),
                           "headers": token}),
        "bad metric": ({"json": {**good, "latency_ms": -1}, "headers": token}),
        "two bad fields": ({"json": {**good, "latency_ms": -1, "jitter_ms": "x"},
                            "headers": token}),
        "future timestamp": ({"json": {**good, "timestamp": (now + timedelta(hours=1))
                                       .isoformat().replace("+00:00", "Z")},
                              "headers": token}),
        "invalid JSON": ({"data": b"{not json", **raw}),
        "JSON array": ({"data": b"[1, 2]", **raw}),
        "not UTF-8": ({"data": b"\xff\xfe{}", **raw}),
        "empty body": ({"data": b"", **raw}),
        "form body": ({"data": "a=1", "content_type": "application/x-www-form-urlencoded",
                       "headers": token}),
        "no content type": ({"data": b"{}", "headers": token}),
        "node_id null": ({"json": {**good, "node_id": None}, "headers": token}),
        "plus-signed length": ({"data": json.dumps(good), **raw, "environ_overrides": {
            "CONTENT_LENGTH": f"+{len(json.dumps(good))}"}}),
    }


def test_every_answer_is_the_views_answer(app, client, node, node_headers, node_probes,
                                          other_node, other_probe, make_heartbeat,
                                          monkeypatch):
    cases = _cases(node, node_probes, other_node, other_probe, make_heartbeat)
    fast = {name: _answer(client.post(URL, **kwargs)) for name, kwargs in cases.items()}
    monkeypatch.setattr(app, "wsgi_app", _without_fast_path(app))
    view = {name: _answer(client.post(URL, **kwargs)) for name, kwargs in cases.items()}
    for name in cases:
        assert fast[name] == view[name], name
    # and the corpus covers both sides of the fast path
    assert fast["accepted"][0] == 200 and fast["accepted"][1]["accepted"] == 3
    assert fast["single probe form"][1]["accepted"] == 1
    assert {fast[name][0] for name in cases} >= {200, 400, 401, 403, 415}
    assert fast["plus-signed length"][0] == 400  # Werkzeug reads "+551" as no length


def test_accepted_heartbeats_skip_the_view_and_errors_reach_it(app, client, node_headers,
                                                                node, node_probes,
                                                                make_heartbeat, monkeypatch):
    seen = []
    real = beacon_resources.ingest
    monkeypatch.setattr(beacon_resources, "ingest",
                        lambda *a, **k: seen.append("view") or real(*a, **k))
    body = make_heartbeat(node["id"], datetime.now(UTC), node_probes)
    assert client.post(URL, json=body, headers=node_headers).status_code == 200
    assert seen == []
    assert_error(client.post(URL, json={**body, "latency_ms": -1}, headers=node_headers),
                 400, "ERR_INVALID_METRICS")
    assert seen == ["view"]


def test_switched_off_the_view_serves_everything(app_factory, make_heartbeat):
    off = app_factory(PULSE_HEARTBEAT_FAST_PATH="0")
    assert not isinstance(off.wsgi_app, fast_path.HeartbeatFastPath)


def test_a_request_is_counted_once_against_the_rate_limit(app_factory, make_heartbeat):
    from tests.api.test_heartbeat_validation import _node_on

    limited = app_factory(PULSE_NODE_RATE_LIMIT="3/minute")
    client = limited.test_client()
    node_id, headers, probes = _node_on(limited, "limited-fast")
    body = make_heartbeat(node_id, datetime.now(UTC), probes)
    # Two requests the fast path counts, then hands to the view (which must not count
    # them again), and one it serves: exactly the limit.
    for bad in ({**body, "latency_ms": -1}, {**body, "timestamp": "yesterday"}):
        assert client.post(URL, json=bad, headers=headers).status_code == 400
    assert client.post(URL, json=body, headers=headers).status_code == 200
    assert_error(client.post(URL, json=body, headers=headers), 429, "ERR_RATE_LIMITED")


def test_telemetry_counts_each_request_once(app, client, node, node_headers, node_probes,
                                            make_heartbeat):
    labels = {"method": "POST", "endpoint": URL, "status": "200"}
    bad = {"method": "POST", "endpoint": URL, "status": "400"}

    def count(which):
        return REGISTRY.get_sample_value("pulse_http_requests_total", which) or 0.0

    before, before_bad = count(labels), count(bad)
    accepted_before = REGISTRY.get_sample_value("pulse_heartbeats_total",
                                                {"outcome": "accepted"}) or 0.0
    body = make_heartbeat(node["id"], datetime.now(UTC), node_probes)
    for _ in range(3):
        assert client.post(URL, json=body, headers=node_headers).status_code == 200
    client.post(URL, json={**body, "latency_ms": -1}, headers=node_headers)
    assert count(labels) - before == 3
    assert count(bad) - before_bad == 1
    assert REGISTRY.get_sample_value("pulse_heartbeats_total",
                                     {"outcome": "accepted"}) - accepted_before == 3


def test_answers_agree_with_their_documented_schemas(client, node, node_headers, node_probes,
                                                     make_heartbeat):
    body = make_heartbeat(node["id"], datetime.now(UTC), node_probes)
    single = client.post(URL, json=body, headers=node_headers).get_json()
    assert HeartbeatAnswerSchema().dump(single) == single
    assert set(single) == set(HeartbeatAnswerSchema().fields)
    batch = client.post("/api/v1/beacon/heartbeats",
                        json={"heartbeats": [body, {**body, "latency_ms": -1}]},
                        headers=node_headers).get_json()
    assert BatchAnswerSchema().dump(batch) == batch
    assert set(batch) == set(BatchAnswerSchema().fields)
    assert batch["rejected"][0]["index"] == 1


def test_a_backend_outage_is_tried_once_then_503(app, client, node, node_headers, node_probes,
                                                 make_heartbeat, monkeypatch):
    import redis

    from app.ingest import store as node_writes

    body = make_heartbeat(node["id"], datetime.now(UTC), node_probes)
    assert client.post(URL, json=body, headers=node_headers).status_code == 200  # warm
    calls = []

    def down(client_, commands):
        calls.append(1)
        raise redis.ConnectionError("Connection refused")

    monkeypatch.setattr(node_writes, "round_trip", down)
    response = client.post(URL, json=body, headers=node_headers)
    assert_error(response, 503, "ERR_UNAVAILABLE")
    assert response.headers["Retry-After"] == "5"
    assert calls == [1]  # the view did not go through the outage a second time


def test_a_failed_early_flush_request_does_not_store_the_heartbeat_twice(
        app, client, node, node_headers, node_probes, make_heartbeat, monkeypatch):
    import redis

    from app.extensions import get_redis
    from app.ingest import store as ingest_service
    from app.redis_keys import pending_points_key, pending_stream

    with app.app_context():
        handle = get_redis()
        handle.client.set(pending_points_key(handle.prefix), 500)  # an early flush is due
        before = handle.client.xlen(pending_stream(handle.prefix))

    def broken():
        raise redis.ConnectionError("blip")

    monkeypatch.setattr(ingest_service, "request_early_flush", broken)
    body = make_heartbeat(node["id"], datetime.now(UTC), node_probes)
    response = client.post(URL, json=body, headers=node_headers)
    assert response.status_code == 200 and response.get_json()["accepted"] == 3
    with app.app_context():
        assert handle.client.xlen(pending_stream(handle.prefix)) == before + 1
        assert int(handle.client.get(pending_points_key(handle.prefix))) == 503
