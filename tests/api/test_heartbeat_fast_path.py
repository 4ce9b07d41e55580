"""The heartbeat fast path (app/api/beacon/fast_path.py) answers exactly what the Flask
view answers: it serves accepted heartbeats itself and hands everything else to the view."""

from __future__ import annotations

import json
import re
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
    # and byte for byte, but for the answer's own time
    data = re.sub(rb'"timestamp":"[^"]*"', b'"timestamp":"-"', response.data)
    return response.status_code, body, headers, data


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
        "warnings, not ASCII": ({"json": {**good, "metadata": {"hôte\x01": "é" * 300}},
                                 "headers": token}),
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
    assert len(fast["warnings, not ASCII"][1]["warnings"]) == 2
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

    def down(client_, payload, count):
        calls.append(1)
        raise redis.ConnectionError("Connection refused")

    monkeypatch.setattr(node_writes, "round_trip_packed", down)
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


# Bodies where orjson and the standard library could part ways (parse_body must read each
# as json.loads does, or fail as it fails).
_DEEP = b"[" * 150 + b"]" * 150
TRICKY_BODIES = [
    b'{"a":1,"b":2.5,"c":null,"d":true,"e":"x","f":[1,{"g":-0}]}',
    b'{"a":1,"b":2,"a":3}',  # duplicate keys: the last wins, at the first's place
    b'{"n":12345678901234567890123}', b'{"n":-9223372036854775809}',
    b'{"n":18446744073709551616}', b'{"n":9223372036854775807}', b'{"n":1.00000000000000000001}',
    b'{"n":NaN}', b'{"n":-Infinity}', b'{"n":1e400}', b'{"n":1e-400}', b'{"n":-0.0}',
    b'\xef\xbb\xbf{"bom":1}', '{"utf16":1}'.encode("utf-16"), b'"\\ud800"',
    b'{"s":"\xed\xa0\x80"}', b'{"s":"\\ud83d\\ude00\\u0000"}', b'{"s":"\x01"}',
    _DEEP, b"[" * 250 + b"]" * 250, b"[" * 5000 + b"]" * 5000, b"{", b"", b"[1,]",
    json.dumps({"results": [{"latency_ms": i / 7} for i in range(300)]}).encode(),
]


def _typed(value):
    """The value with every number's type, so 1 and 1.0 (or True) differ."""
    if isinstance(value, dict):
        return [(_typed(k), _typed(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return type(value), repr(value)


@pytest.mark.parametrize("raw", TRICKY_BODIES, ids=range(len(TRICKY_BODIES)))
def test_the_body_is_read_as_the_views_json_loads_reads_it(raw):
    try:
        expected = _typed(json.loads(raw))
    except (ValueError, RecursionError) as exc:
        with pytest.raises(type(exc)):
            fast_path.parse_body(raw)
    else:
        assert _typed(fast_path.parse_body(raw)) == expected


def test_a_common_body_is_parsed_by_orjson(make_heartbeat, monkeypatch):
    class NoStandardLibrary:
        def loads(self, raw):
            raise AssertionError("parsed by the standard library")

    monkeypatch.setattr(fast_path, "json", NoStandardLibrary())
    body = make_heartbeat("5b0c3c1e-8d4f-4c43-9d3e-1f2a3b4c5d6e", datetime.now(UTC),
                          ["0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"])
    raw = json.dumps(body).encode()
    assert fast_path.parse_body(raw) == json.loads(raw)
    assert fast_path.parse_body(_DEEP) == json.loads(_DEEP)
