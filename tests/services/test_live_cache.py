"""The live hour in Redis sorted sets (SPEC §6): encoding, idempotence, trim, TTL, keys."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from app import redis_keys as keys
from app.extensions import get_redis
from app.history.live_cache import (
    LIVE_TTL_SECONDS,
    LIVE_WINDOW_MS,
    NODE_SERIES,
    Point,
    decode_member,
    decode_time_latency_loss,
    encode_member,
    read_many,
    read_series,
)
from app.ingest.store import write_points

NODE = "5b0c3c1e-8d4f-4c43-9d3e-1f2a3b4c5d6e"
PROBE = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
NOW_MS = 1_769_776_496_000  # 2026-01-30T12:34:56Z


@pytest.fixture
def app(reset_app):
    """A fresh app for each test, without building one (tests.conftest.reset_app)."""
    return reset_app


@pytest.fixture
def redis_handle(app):
    with app.app_context():
        yield get_redis()


def write(handle, points, now_ms: int = NOW_MS, node: str = NODE) -> int:
    return write_points(handle.client, handle.prefix, node, points, now_ms)


def key(handle, series: str = PROBE, node: str = NODE) -> str:
    return keys.live_key(handle.prefix, node, series)


@pytest.mark.parametrize("point", [
    Point(PROBE, NOW_MS, 12.34, 0.5, 0.07),
    Point(PROBE, NOW_MS + 1, 0.0, 0.0, 0.0),
    Point(PROBE, NOW_MS - 999, 60000.0, 100.0, 60000.0),
    Point(NODE_SERIES, 1, 0.01, 99.99, 1234.56),
])
def test_member_round_trip(point):
    member = encode_member(point)
    assert isinstance(member, bytes)
    assert len(member) == 43  # fixed size: always under the 64-byte listpack limit
    assert decode_member(point.series, member) == point


@pytest.mark.parametrize("point", [
    Point(PROBE, NOW_MS, 12.34, 0.5, 0.07, 11.0, 12.0, 15.5, 19.99, 10, 10),
    Point(PROBE, NOW_MS, None, 100.0, None, sent=3, received=0, error="ERR_CONNECTION_REFUSED"),
    Point(PROBE, NOW_MS, 40.0, 100.0, 1.0),  # a summary claiming a latency at 100 % loss
    Point(NODE_SERIES, NOW_MS - 5, 0.01, 99.99, 1234.56),
])
def test_time_latency_and_loss_are_those_of_the_whole_member(point):
    """The sparkline's decode reads the same time and loss as decode_member, and no
    latency where nothing was received."""
    whole = decode_member(point.series, encode_member(point))
    dead = whole.latency_ms is None or whole.packet_loss_rate >= 100
    assert decode_time_latency_loss(encode_member(point)) == (
        whole.ts_ms, None if dead else whole.latency_ms, whole.packet_loss_rate)


def test_member_is_derived_from_the_point_only():
    a = Point(PROBE, NOW_MS, 12.3, 1.0, 0.5)
    assert encode_member(a) == encode_member(Point(PROBE, NOW_MS, 12.3, 1.0, 0.5))
    assert encode_member(a) == encode_member(Point("another-series", NOW_MS, 12.3, 1.0, 0.5))
    assert encode_member(a) != encode_member(Point(PROBE, NOW_MS + 1, 12.3, 1.0, 0.5))
    assert encode_member(a) != encode_member(Point(PROBE, NOW_MS, 12.4, 1.0, 0.5))


def test_point_is_scored_by_its_timestamp(redis_handle):
    write(redis_handle, [Point(PROBE, NOW_MS - 5000, 10.0, 0.0, 1.0)])
    [(member, score)] = redis_handle.client.zrange(key(redis_handle), 0, -1, withscores=True)
    assert score == NOW_MS - 5000
    assert decode_member(PROBE, member).latency_ms == 10.0


def test_resent_point_is_the_same_member(redis_handle):
    points = [Point(PROBE, NOW_MS - i * 1000, 10.0 + i, 0.0, 0.5) for i in range(5)]
    assert write(redis_handle, points) == 5
    assert redis_handle.client.zcard(key(redis_handle)) == 5
    write(redis_handle, points)
    write(redis_handle, points[:2])
    assert redis_handle.client.zcard(key(redis_handle)) == 5
    assert read_series(redis_handle.client, redis_handle.prefix, NODE, PROBE) == sorted(
        points, key=lambda p: p.ts_ms)


def test_resent_heartbeat_keeps_zcard(app, client, node, node_headers, node_probes,
                                      make_heartbeat):
    body = make_heartbeat(node["id"], datetime.now(UTC) - timedelta(seconds=30), node_probes)
    for _ in range(3):
        assert client.post("/api/v1/beacon/heartbeat", json=body,
                           headers=node_headers).status_code == 200
    with app.app_context():
        handle = get_redis()
        for series in (*node_probes, NODE_SERIES):
            assert handle.client.zcard(key(handle, series, node["id"])) == 1


def test_points_older_than_the_live_hour_are_not_written(redis_handle):
    cutoff = NOW_MS - LIVE_WINDOW_MS
    queued = write(redis_handle, [
        Point(PROBE, cutoff - 3_600_000, 1.0, 0.0, 0.0),   # two hours ago
        Point(PROBE, cutoff - 1, 2.0, 0.0, 0.0),           # just beyond the hour
        Point(PROBE, cutoff + 1, 3.0, 0.0, 0.0),           # just inside it
        Point(PROBE, NOW_MS, 4.0, 0.0, 0.0),
    ])
    assert queued == 2
    stored = read_series(redis_handle.client, redis_handle.prefix, NODE, PROBE)
    assert [p.latency_ms for p in stored] == [3.0, 4.0]


def test_a_series_with_only_old_points_gets_no_key(redis_handle):
    assert write(redis_handle, [Point(PROBE, NOW_MS - 2 * LIVE_WINDOW_MS, 1.0, 0.0, 0.0)]) == 0
    assert not redis_handle.client.exists(key(redis_handle))


def test_trim_removes_members_older_than_the_window(redis_handle):
    early = [Point(PROBE, NOW_MS - m * 60_000, float(m), 0.0, 0.0) for m in (50, 40, 10)]
    write(redis_handle, early)
    assert redis_handle.client.zcard(key(redis_handle)) == 3

    later_ms = NOW_MS + 15 * 60_000  # the 50-min-old point is now 65 min old
    write(redis_handle, [Point(PROBE, later_ms, 99.0, 0.0, 0.0)], now_ms=later_ms)
    remaining = read_series(redis_handle.client, redis_handle.prefix, NODE, PROBE)
    assert [p.latency_ms for p in remaining] == [40.0, 10.0, 99.0]
    assert redis_handle.client.zcard(key(redis_handle)) == 3


def test_trim_only_touches_the_series_written(redis_handle):
    other = "11111111-2222-4333-8444-555555555555"
    write(redis_handle, [Point(PROBE, NOW_MS - 50 * 60_000, 1.0, 0.0, 0.0),
                         Point(other, NOW_MS - 50 * 60_000, 1.0, 0.0, 0.0)])
    later_ms = NOW_MS + 15 * 60_000
    write(redis_handle, [Point(PROBE, later_ms, 2.0, 0.0, 0.0)], now_ms=later_ms)
    assert redis_handle.client.zcard(key(redis_handle, other)) == 1
    # but reads never return points older than the window
    assert read_series(redis_handle.client, redis_handle.prefix, NODE, other,
                       now_ms=later_ms) == []
    assert read_many(redis_handle.client, redis_handle.prefix, NODE, [other],
                     later_ms) == {other: []}


def test_ttl_is_set_on_every_series_written(redis_handle):
    write(redis_handle, [Point(PROBE, NOW_MS, 1.0, 0.0, 0.0),
                         Point(NODE_SERIES, NOW_MS, 1.0, 0.0, 0.0)])
    for series in (PROBE, NODE_SERIES):
        ttl = redis_handle.client.ttl(key(redis_handle, series))
        assert LIVE_WINDOW_MS // 1000 <= ttl <= LIVE_TTL_SECONDS


def test_ttl_is_renewed_by_each_write(redis_handle):
    write(redis_handle, [Point(PROBE, NOW_MS, 1.0, 0.0, 0.0)])
    redis_handle.client.expire(key(redis_handle), 10)
    write(redis_handle, [Point(PROBE, NOW_MS + 1000, 1.0, 0.0, 0.0)], now_ms=NOW_MS + 1000)
    assert redis_handle.client.ttl(key(redis_handle)) > 10


def test_heartbeat_writes_the_node_summary_under_node(app, client, node, node_headers,
                                                      node_probes, make_heartbeat):
    ts = (datetime.now(UTC) - timedelta(seconds=20)).replace(microsecond=0)
    body = make_heartbeat(node["id"], ts, node_probes, latency=[10.0, 20.0, 30.0],
                          latency_ms=21.5, packet_loss_rate=2.5, jitter_ms=0.75)
    assert client.post("/api/v1/beacon/heartbeat", json=body,
                       headers=node_headers).status_code == 200
    with app.app_context():
        handle = get_redis()
        summary_key = f"{handle.prefix}:live:{{{node['id']}}}:_node"
        assert handle.client.exists(summary_key)
        assert 0 < handle.client.ttl(summary_key) <= LIVE_TTL_SECONDS
        summary = read_series(handle.client, handle.prefix, node["id"], NODE_SERIES)
        assert summary == [Point(NODE_SERIES, int(ts.timestamp() * 1000), 21.5, 2.5, 0.75)]
        probes = read_many(handle.client, handle.prefix, node["id"], node_probes,
                           int(datetime.now(UTC).timestamp() * 1000))
        assert [[p.latency_ms for p in probes[pid]] for pid in node_probes] == [
            [10.0], [20.0], [30.0]]


def test_key_names_carry_the_node_hash_tag(app):
    with app.app_context():
        prefix = get_redis().prefix
    tag = "{" + NODE + "}"
    for name in (keys.live_key(prefix, NODE, PROBE), keys.live_key(prefix, NODE, NODE_SERIES),
                 keys.node_state_key(prefix, NODE), keys.node_seen_key(prefix, NODE),
                 keys.presence_key(prefix, NODE, "20260130")):
        assert name.startswith(prefix + ":")
        assert re.findall(r"\{([^}]*)\}", name) == [NODE], name
        assert tag in name
    assert keys.live_key(prefix, NODE, PROBE) == f"{prefix}:live:{tag}:{PROBE}"


def test_every_per_node_key_a_heartbeat_writes_is_hash_tagged(app, client, node, node_headers,
                                                             node_probes, make_heartbeat):
    body = make_heartbeat(node["id"], datetime.now(UTC), node_probes)
    assert client.post("/api/v1/beacon/heartbeat", json=body,
                       headers=node_headers).status_code == 200
    with app.app_context():
        prefix = get_redis().prefix
        names = [k.decode() for k in get_redis().client.keys("*")]
    per_node = [n for n in names if node["id"] in n]
    assert per_node
    for name in per_node:
        assert "{" + node["id"] + "}" in name, name
    live = [n for n in per_node if ":live:" in n]
    assert sorted(live) == sorted(
        f"{prefix}:live:{{{node['id']}}}:{series}" for series in (*node_probes, NODE_SERIES))
