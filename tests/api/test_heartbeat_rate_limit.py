"""PULSE_NODE_RATE_LIMIT in embedded mode (no REDIS_URL: the same check script on fakeredis):
a 429 with Retry-After and the unified error stores nothing, requests that store nothing
count once too, a node known refused is answered before its body is read, and the check
shares the write's round trip (real Redis: tests/integration/test_rate_limit_redis.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.extensions import get_redis
from app.history.live_cache import read_series
from app.ingest import rate_limit, redis_wire, store
from app.redis_keys import node_rate_gate_key, pending_stream
from tests.api.test_heartbeat_validation import _node_on
from tests.support.api import assert_error
from tests.support.redis_commands import unpack_commands

URL = "/api/v1/beacon/heartbeat"
BATCH_URL = "/api/v1/beacon/heartbeats"


@pytest.fixture(params=["1", "0"], ids=["fast-path", "view"])
def limited(app_factory, request):
    return app_factory(PULSE_NODE_RATE_LIMIT="3/minute", PULSE_HEARTBEAT_FAST_PATH=request.param)


@pytest.fixture
def clock(monkeypatch):
    now = [datetime.now(UTC).timestamp()]
    monkeypatch.setattr(rate_limit, "clock", lambda: now[0])
    return now


def _body(make_heartbeat, node_id, probes, seconds_ago):
    return make_heartbeat(node_id, datetime.now(UTC) - timedelta(seconds=seconds_ago), probes)


def test_a_429_stores_nothing(limited, make_heartbeat):
    client = limited.test_client()
    node_id, headers, probes = _node_on(limited, "limited-store", probes=2)
    for seconds in (50, 40, 30):
        assert client.post(URL, json=_body(make_heartbeat, node_id, probes, seconds),
                           headers=headers).status_code == 200
    single = client.post(URL, json=_body(make_heartbeat, node_id, probes, 20), headers=headers)
    assert_error(single, 429, "ERR_RATE_LIMITED")
    assert 1 <= int(single.headers["Retry-After"]) <= 60
    assert single.get_json()["details"]["retry_after_seconds"] == int(single.headers["Retry-After"])
    batch = client.post(BATCH_URL, json={"heartbeats": [
        _body(make_heartbeat, node_id, probes, 10)]}, headers=headers)
    assert_error(batch, 429, "ERR_RATE_LIMITED")
    assert "Retry-After" in batch.headers
    with limited.app_context():
        handle = get_redis()
        assert handle.client.xlen(pending_stream(handle.prefix)) == 3
        for series in [*probes, "_node"]:
            assert len(read_series(handle.client, handle.prefix, node_id, series)) == 3
        assert not handle.client.exists(node_rate_gate_key(handle.prefix, node_id))


def test_requests_that_store_nothing_count_and_a_400_over_the_limit_is_429(
        limited, make_heartbeat):
    client = limited.test_client()
    node_id, headers, probes = _node_on(limited, "limited-bad", probes=1)
    body = _body(make_heartbeat, node_id, probes, 30)
    assert_error(client.post(URL, json={**body, "latency_ms": -1}, headers=headers),
                 400, "ERR_INVALID_METRICS")
    # a batch whose every item is refused: 200 with the rejections, counted
    answer = client.post(BATCH_URL, json={"heartbeats": [{**body, "latency_ms": -1}]},
                         headers=headers)
    assert answer.status_code == 200 and answer.get_json()["accepted"] == 0
    assert client.post(URL, json=body, headers=headers).status_code == 200
    assert_error(client.post(URL, json={**body, "latency_ms": -1}, headers=headers),
                 429, "ERR_RATE_LIMITED")
    assert_error(client.post(URL, data=b"{not json", headers={
        **headers, "Content-Type": "application/json"}), 429, "ERR_RATE_LIMITED")


def test_the_window_frees_a_slot_when_its_oldest_hit_leaves(limited, make_heartbeat, clock):
    client = limited.test_client()
    node_id, headers, probes = _node_on(limited, "limited-window", probes=1)
    for i in range(3):
        assert client.post(URL, json=_body(make_heartbeat, node_id, probes, 50 - i),
                           headers=headers).status_code == 200
        clock[0] += 10
    refused = client.post(URL, json=_body(make_heartbeat, node_id, probes, 40),
                          headers=headers)
    assert_error(refused, 429, "ERR_RATE_LIMITED")
    assert refused.headers["Retry-After"] == "30"  # the first hit, 30 s ago, leaves in 30
    clock[0] += 29.5
    assert client.post(URL, json=_body(make_heartbeat, node_id, probes, 39),
                       headers=headers).status_code == 429
    clock[0] += 1
    assert client.post(URL, json=_body(make_heartbeat, node_id, probes, 38),
                       headers=headers).status_code == 200


def test_a_node_known_refused_costs_no_round_trip(limited, make_heartbeat, monkeypatch):
    client = limited.test_client()
    node_id, headers, probes = _node_on(limited, "limited-known", probes=1)
    body = _body(make_heartbeat, node_id, probes, 30)
    for _ in range(3):
        assert client.post(URL, json=body, headers=headers).status_code == 200
    assert client.post(URL, json=body, headers=headers).status_code == 429
    trips = []
    real = redis_wire.round_trip_packed
    for module in (rate_limit, store):
        monkeypatch.setattr(module, "round_trip_packed",
                            lambda c, payload, count: trips.append(payload)
                            or real(c, payload, count))
    for url, payload in ((URL, body), (BATCH_URL, {"heartbeats": [body]})):
        assert_error(client.post(url, json=payload, headers=headers), 429, "ERR_RATE_LIMITED")
    assert trips == []


def test_writes_go_again_when_the_gate_moved_under_an_admitted_request(app_factory,
                                                                      make_heartbeat,
                                                                      monkeypatch):
    """Another client's refusal of the same node may touch the gate between WATCH and
    EXEC: the hit is counted, EXEC discarded the writes, so they are sent once more."""
    limited = app_factory(PULSE_NODE_RATE_LIMIT="3/minute")
    client = limited.test_client()
    node_id, headers, probes = _node_on(limited, "limited-race", probes=1)
    real = redis_wire.round_trip_packed
    sent = []

    def touch_gate_first(client_, payload, count):
        commands = unpack_commands(payload)
        assert len(commands) == count
        sent.append(commands)
        if commands and commands[0][0] == "WATCH":
            # the gate changes after WATCH: as if another request were refused meanwhile
            commands = [commands[0], ("SET", commands[0][1], "x"), ("DEL", commands[0][1]),
                        *commands[1:]]
            replies = redis_wire.round_trip(client_, commands)
            return [replies[0], *replies[3:]]
        return real(client_, payload, count)

    monkeypatch.setattr(store, "round_trip_packed", touch_gate_first)
    body = _body(make_heartbeat, node_id, probes, 30)
    assert client.post(URL, json=body, headers=headers).status_code == 200
    assert len(sent) == 2 and sent[1][0][0] != "WATCH"  # the writes, unguarded
    with limited.app_context():
        handle = get_redis()
        assert handle.client.xlen(pending_stream(handle.prefix)) == 1
        assert len(read_series(handle.client, handle.prefix, node_id, probes[0])) == 1
    monkeypatch.setattr(store, "round_trip_packed", real)
    for _ in range(2):
        assert client.post(URL, json=body, headers=headers).status_code == 200
    assert client.post(URL, json=body, headers=headers).status_code == 429  # counted once


def test_off_sends_no_check(app_factory, make_heartbeat, monkeypatch):
    unlimited = app_factory(PULSE_NODE_RATE_LIMIT="0")
    client = unlimited.test_client()
    node_id, headers, probes = _node_on(unlimited, "unlimited", probes=1)
    sent = []
    real = redis_wire.round_trip_packed
    monkeypatch.setattr(store, "round_trip_packed",
                        lambda c, payload, count: sent.append(unpack_commands(payload))
                        or real(c, payload, count))
    for i in range(5):
        assert client.post(URL, json=_body(make_heartbeat, node_id, probes, 30 - i),
                           headers=headers).status_code == 200
    assert not any(command[0] in ("WATCH", "EVAL", "MULTI") for trip in sent
                   for command in trip)


def test_the_remembered_refusals_stay_bounded(app_factory, monkeypatch):
    limited = app_factory(PULSE_NODE_RATE_LIMIT="3/minute")
    monkeypatch.setattr(rate_limit, "REFUSED_MAX", 4)
    configured = limited.extensions["pulse_rate_limit"]
    for i in range(4):
        configured.refuse(f"old-{i}", oldest_hit=100.0, now=120.0)  # free at 160
    configured.refuse("new", oldest_hit=200.0, now=220.0)  # the old ones have expired
    assert set(configured.refused_until) == {"new"}
    for i in range(3):
        configured.refuse(f"live-{i}", oldest_hit=200.0, now=220.0)
    configured.refuse("one-more", oldest_hit=200.0, now=220.0)  # full of live ones: cleared
    assert set(configured.refused_until) == {"one-more"}
