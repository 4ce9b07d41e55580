"""Every write to one node's own Redis keys, as plain commands for one pipelined round trip.

Per series: ZADD of its points, ZREMRANGEBYSCORE to the live hour, EXPIRE (SPEC §6); then
the node's presence bit for uptime_24h and its last-seen hash. Each of these is
idempotent, so a round trip retried after a dropped connection does them no harm (the
queue's XADD in the same round trip is not: a retry after a read timeout may append the
heartbeat twice, which the flush's ON CONFLICT DO NOTHING stores once).

Plain commands rather than one Lua script: measured under load (docs/benchmarks.md), the
script's own overhead (calling into Lua, per-`redis.call` argument objects, its
MULTI/EXEC in the AOF) cost Redis ~45 µs a heartbeat, more than the 14 writes themselves
(~17 µs). The client side stays cheap because redis_wire packs and parses in C.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from app.services.keys import live_key, node_seen_key, presence_key
from app.services.live_cache import LIVE_TTL_SECONDS, LIVE_WINDOW_MS, Point, encode_member
from app.services.redis_wire import raise_error_replies, round_trip

PRESENCE_TTL_SECONDS = 3 * 86400


@dataclass
class NodeWrite:
    """The node's write commands and how many live points they add."""

    commands: list[tuple]
    live_points: int


def node_write(prefix: str, node_id: str, points: Iterable[Point], now_ms: int,
               present_at: datetime | None = None,
               seen: Mapping[str, object] | None = None) -> NodeWrite:
    """The node's writes for these points (and optionally presence and last-seen).

    Points older than the live hour skip the live cache (they go to the database only).
    """
    cutoff = now_ms - LIVE_WINDOW_MS
    by_series: dict[str, dict[bytes, int]] = {}
    for point in points:
        if point.ts_ms > cutoff:
            by_series.setdefault(point.series, {})[encode_member(point)] = point.ts_ms
    commands: list[tuple] = []
    live_points = 0
    trim_below = f"({cutoff}"
    for series, members in by_series.items():
        key = live_key(prefix, node_id, series)
        zadd: list = ["ZADD", key]
        for member, score in members.items():
            zadd += (score, member)
        live_points += len(members)
        commands += (tuple(zadd), ("ZREMRANGEBYSCORE", key, "-inf", trim_below),
                     ("EXPIRE", key, LIVE_TTL_SECONDS))
    if present_at is not None:
        day = f"{present_at.year:04d}{present_at.month:02d}{present_at.day:02d}"  # %Y%m%d
        key = presence_key(prefix, node_id, day)
        commands += (("SETBIT", key, present_at.hour * 60 + present_at.minute, 1),
                     ("EXPIRE", key, PRESENCE_TTL_SECONDS))
    if seen:
        hset: list = ["HSET", node_seen_key(prefix, node_id)]
        for field, value in seen.items():
            hset += (field, value)
        commands.append(tuple(hset))
    return NodeWrite(commands, live_points)


def execute(client, commands: list) -> list:
    """Run commands in one round trip; raise the first error reply, if any."""
    return raise_error_replies(round_trip(client, commands))


def write_points(client, prefix: str, node_id: str, points: Iterable[Point],
                 now_ms: int) -> int:
    """Write points to the live cache now (tests, benchmarks); returns how many."""
    write = node_write(prefix, node_id, points, now_ms)
    if write.commands:
        execute(client, write.commands)
    return write.live_points
