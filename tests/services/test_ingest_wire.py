"""What a heartbeat's round trip sends (SPEC §6), packed from parts kept per node: the same
bytes as the documented commands packed one by one, whatever the points, the day or the
node (the packed parts are cached per node, so a second node or a new day must not reuse
another's)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from limits import parse

from app import redis_keys as keys
from app.history.live_cache import (
    LIVE_TTL_SECONDS,
    LIVE_WINDOW_MS,
    NODE_SERIES,
    Point,
    encode_member,
)
from app.ingest import rate_limit, store
from app.ingest.redis_wire import command, pack
from tests.support.redis_commands import unpack_commands

NODES = ["5b0c3c1e-8d4f-4c43-9d3e-1f2a3b4c5d6e", "6c1d4d2f-9e5a-4d54-8e4f-2a3b4c5d6e7f"]
PROBE = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
PREFIX = "wire"


def _expected(node: str, points: list[Point], now_ms: int, present_at, seen) -> list[tuple]:
    """SPEC §6's writes, spelt out command by command."""
    cutoff = now_ms - LIVE_WINDOW_MS
    by_series: dict[str, list] = {}
    for p in points:
        if p.ts_ms > cutoff:
            by_series.setdefault(p.series, []).extend([p.ts_ms, encode_member(p)])
    commands = []
    for series, scored in by_series.items():
        key = keys.live_key(PREFIX, node, series)
        commands += [("ZADD", key, *scored), ("ZREMRANGEBYSCORE", key, "-inf", f"({cutoff}"),
                     ("EXPIRE", key, LIVE_TTL_SECONDS)]
    if present_at is not None:
        key = keys.presence_key(PREFIX, node, present_at.strftime("%Y%m%d"))
        commands += [("SETBIT", key, present_at.hour * 60 + present_at.minute, 1),
                     ("EXPIRE", key, store.PRESENCE_TTL_SECONDS)]
    if seen:
        key = keys.node_seen_key(PREFIX, node)
        commands += [("HSET", key, *[x for item in seen.items() for x in item]),
                     ("HSETNX", key, "first_seen_ms", seen["last_seen_ms"])]
    return commands


@pytest.mark.parametrize("node", NODES)
@pytest.mark.parametrize("day", [datetime(2026, 1, 30, 12, 34, 56, tzinfo=UTC),
                                 datetime(2026, 12, 31, 23, 59, 1, tzinfo=UTC)])
def test_the_packed_writes_are_the_documented_commands(node, day):
    now_ms = int(day.timestamp() * 1000)
    points = [
        Point(NODE_SERIES, now_ms - 1_000, 6.3, 0.0, 0.0),
        Point(PROBE, now_ms - 1_000, 5.0, 0.0, 0.1, 4.5, 5.0, 6.0, 6.5, 10, 10, None),
        Point(PROBE, now_ms - 61_000, None, 100.0, None, None, None, None, None, 10, 0,
              "ERR_TIMEOUT"),  # two points of one series: one ZADD
        Point(PROBE, now_ms - LIVE_WINDOW_MS - 1, 1.0, 0.0, 0.0),  # older than the live hour
    ]
    seen = {"last_seen_ms": now_ms, "config_version": "v1", "agent_version": "é/1",
            "metadata": '{"hostname":"h"}'}
    for present_at, node_seen in ((day, seen), (None, None)):
        write = store.node_write(PREFIX, node, points, now_ms, present_at=present_at,
                                 seen=node_seen)
        expected = _expected(node, points, now_ms, present_at, node_seen)
        assert write.payload == pack(expected)
        assert write.count == len(expected) == len(unpack_commands(write.payload))
        assert write.live_points == 3


def test_the_packed_limit_check_is_watch_and_the_script():
    configured = rate_limit.NodeRateLimit(parse("120/minute"))
    for node in NODES:
        guard = rate_limit.NodeLimitGuard(configured, PREFIX, node)
        gate = keys.node_rate_gate_key(PREFIX, node)
        window = rate_limit.window_key(PREFIX, configured.limit, node)
        check = ("EVAL", rate_limit.CHECK_SCRIPT, 2, window, gate, repr(guard.now), 120, 60)
        assert guard.check == command(*check)
        assert guard.head == pack([("WATCH", gate), check])
        assert guard.head_count == 2


def test_the_commands_packed_once_per_node_are_the_documented_ones():
    for node in NODES:
        node_keys = store.node_keys(PREFIX, node)
        assert node_keys.queue_head + b"$1\r\nx\r\n" == command(
            "XADD", keys.pending_stream(PREFIX), "*", "n", node, "p", "x")
        assert node_keys.flush_queued_read == command("EXISTS", keys.flush_queued_key(PREFIX))
        assert node_keys.mark_seen == command("SADD", keys.seen_dirty_key(PREFIX), node)
        assert node_keys.count_head + b"$1\r\n3\r\n" == command(
            "INCRBY", keys.pending_points_key(PREFIX), 3)
