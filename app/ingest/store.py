"""Storing accepted heartbeats: every write in one pipelined Redis round trip (SPEC §6).

`store_heartbeats` builds the heartbeat's round trip:

Per series: ZADD of its points, ZREMRANGEBYSCORE to the live hour, EXPIRE; then the node's
presence bit for uptime_24h and its last-seen hash (`node_write`); the pending queue's
XADD and point count; the node in the last-seen dirty set. After the writes, two reads:
whether an early flush is queued, and the node epoch for the in-memory node lookup cache.

With PULSE_NODE_RATE_LIMIT on, the writes go inside MULTI/EXEC behind the node's limit
check (app.ingest.rate_limit.NodeLimitGuard: WATCH + the check script), in the same round
trip: a refused request stores nothing and costs no round trip of its own.

Each write is idempotent, so a round trip retried after a dropped connection does them no
harm (the queue's XADD is not: a retry after a read timeout may append the heartbeat twice,
which the flush's ON CONFLICT DO NOTHING stores once; the limit may count it twice).

Plain commands rather than one Lua script: the script's own overhead cost Redis more than
the writes themselves (figures in docs/benchmarks.md). The client side stays cheap: the
round trip is packed from parts kept per node (its keys as RESP strings, `node_keys`) and the
fixed commands packed once, and redis_wire parses the replies in C.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from flask import current_app

from app.extensions import get_redis
from app.history import pending
from app.history.early_flush import request_early_flush
from app.history.live_cache import (
    LIVE_TTL_SECONDS,
    LIVE_WINDOW_MS,
    NODE_SERIES,
    Point,
    encode_member,
)
from app.ingest import node_lookup
from app.ingest.rate_limit import NodeLimitGuard, guard_for
from app.ingest.redis_wire import (
    bulk,
    command,
    command_head,
    raise_error_replies,
    round_trip_packed,
)
from app.ingest.rules import ValidHeartbeat
from app.redis_keys import (
    flush_queued_key,
    live_key,
    node_seen_key,
    presence_key,
    seen_dirty_key,
)
from app.timeutil import to_ms

log = logging.getLogger(__name__)
PRESENCE_TTL_SECONDS = 3 * 86400
EARLY_FLUSH_PENDING = 100


# Packed once: the parts of the round trip that never change.
_MULTI = command("MULTI")
_EXEC = command("EXEC")
_ZREM_HEAD = command_head("ZREMRANGEBYSCORE", 4)
_MINUS_INF = bulk("-inf")
_EXPIRE_HEAD = command_head("EXPIRE", 3)
_LIVE_TTL = bulk(LIVE_TTL_SECONDS)
_PRESENCE_TTL = bulk(PRESENCE_TTL_SECONDS)
_SETBIT_HEAD = command_head("SETBIT", 4)
_ONE = bulk(1)
_HSETNX_HEAD = command_head("HSETNX", 4)
_FIRST_SEEN = bulk("first_seen_ms")
# A series' three commands when it gets one point (every series of a heartbeat), filled
# with one format: key, score's length, score, member's length, member; key, trim; key.
_ONE_POINT_SERIES = (command_head("ZADD", 4) + b"%s$%d\r\n%d\r\n$%d\r\n%s\r\n"
                     + _ZREM_HEAD + b"%s" + _MINUS_INF + b"%s" + _EXPIRE_HEAD + b"%s" + _LIVE_TTL)
NODE_KEYS_MAX = 100_000  # nodes whose packed keys a process keeps


class _NodeKeys:
    """A node's keys as RESP bulk strings, packed once per process rather than per
    heartbeat (the hot path sends ~20 commands naming them)."""

    __slots__ = ("prefix", "node_id", "live", "seen", "presence_day", "presence", "mark_seen",
                 "queue_head", "count_head", "flush_queued_read")

    def __init__(self, prefix: str, node_id: str) -> None:
        self.prefix, self.node_id = prefix, node_id
        self.live: dict[str, bytes] = {}
        self.seen = bulk(node_seen_key(prefix, node_id))
        self.presence_day, self.presence = "", b""
        self.mark_seen = command("SADD", seen_dirty_key(prefix), node_id)
        # XADD <stream> * n <node> p, up to the entry's points (pending.append_command)
        self.queue_head = command_head("XADD", 7) + b"".join(
            bulk(arg) for arg in pending.append_command(prefix, node_id, [])[1:6])
        # INCRBY <pending points key>, up to the count (pending.count_command)
        self.count_head = command_head("INCRBY", 3) + bulk(
            pending.count_command(prefix, 0)[1])
        # Whether an early flush is queued (the first of the round trip's two reads).
        self.flush_queued_read = command("EXISTS", flush_queued_key(prefix))

    def live_key(self, series: str) -> bytes:
        key = self.live.get(series)
        if key is None:
            key = self.live[series] = bulk(live_key(self.prefix, self.node_id, series))
        return key

    def presence_key(self, day: str) -> bytes:
        if day != self.presence_day:
            self.presence = bulk(presence_key(self.prefix, self.node_id, day))
            self.presence_day = day
        return self.presence


_node_keys: dict[tuple[str, str], _NodeKeys] = {}


def node_keys(prefix: str, node_id: str) -> _NodeKeys:
    keys = _node_keys.get((prefix, node_id))
    if keys is None:
        if len(_node_keys) >= NODE_KEYS_MAX:
            _node_keys.clear()
        keys = _node_keys[prefix, node_id] = _NodeKeys(prefix, node_id)
    return keys


@dataclass
class NodeWrite:
    """The node's write commands, packed, how many, and how many live points they add."""

    payload: bytes
    count: int
    live_points: int


def node_write(prefix: str, node_id: str, points: Iterable[Point], now_ms: int,
               present_at: datetime | None = None,
               seen: Mapping[str, object] | None = None) -> NodeWrite:
    """The node's writes for these points (and optionally presence and last-seen).

    Per series: ZADD of its points, ZREMRANGEBYSCORE to the live hour, EXPIRE. Points older
    than the live hour skip the live cache (they go to the database only).
    """
    keys = node_keys(prefix, node_id)
    cutoff = now_ms - LIVE_WINDOW_MS
    by_series: dict[str, dict[bytes, int]] = {}
    for point in points:
        if point.ts_ms > cutoff:
            by_series.setdefault(point.series, {})[encode_member(point)] = point.ts_ms
    parts: list[bytes] = []
    live_points = 0
    trim_below = bulk(b"(%d" % cutoff)
    for series, members in by_series.items():
        key = keys.live_key(series)
        if len(members) == 1:
            [(member, score)] = members.items()
            parts.append(_ONE_POINT_SERIES % (key, len(str(score)), score, len(member), member,
                                              key, trim_below, key))
            live_points += 1
            continue
        parts += (command_head("ZADD", 2 + 2 * len(members)), key)
        for member, score in members.items():
            parts += (bulk(b"%d" % score), bulk(member))
        parts += (_ZREM_HEAD, key, _MINUS_INF, trim_below, _EXPIRE_HEAD, key, _LIVE_TTL)
        live_points += len(members)
    count = 3 * len(by_series)
    if present_at is not None:
        day = f"{present_at.year:04d}{present_at.month:02d}{present_at.day:02d}"  # %Y%m%d
        key = keys.presence_key(day)
        parts += (_SETBIT_HEAD, key, bulk(present_at.hour * 60 + present_at.minute), _ONE,
                  _EXPIRE_HEAD, key, _PRESENCE_TTL)
        count += 2
    if seen:
        parts += (command_head("HSET", 2 + 2 * len(seen)), keys.seen)
        for field, value in seen.items():
            parts += (bulk(field), bulk(value))
        parts += (_HSETNX_HEAD, keys.seen, _FIRST_SEEN, bulk(seen["last_seen_ms"]))
        count += 2
    return NodeWrite(b"".join(parts), count, live_points)


def write_points(client, prefix: str, node_id: str, points: Iterable[Point],
                 now_ms: int) -> int:
    """Write points to the live cache now (tests, benchmarks); returns how many."""
    write = node_write(prefix, node_id, points, now_ms)
    if write.count:
        raise_error_replies(round_trip_packed(client, write.payload, write.count))
    return write.live_points


def _write_round_trip(client, guard: NodeLimitGuard | None, writes: bytes, write_count: int,
                      reads: bytes, read_count: int) -> tuple[list, list]:
    """The writes, then the reads, in one round trip: (write replies, read replies). With a
    guard the writes run in MULTI/EXEC behind it: RateLimited when it refuses, and then
    nothing was written. The first error reply is raised."""
    if guard is None:
        replies = raise_error_replies(
            round_trip_packed(client, writes + reads, write_count + read_count))
        return replies[:write_count], replies[write_count:]
    head_count = guard.head_count
    replies = round_trip_packed(client, b"".join((guard.head, _MULTI, writes, _EXEC, reads)),
                                head_count + 2 + write_count + read_count)
    at_exec = head_count + 1 + write_count
    guard.admit(replies[:head_count])  # refused: EXEC discarded the writes
    raise_error_replies(replies[head_count:at_exec])  # MULTI and the QUEUED
    written = replies[at_exec]
    if written is None:
        # Admitted (the hit is counted), but a refusal of this node by another client
        # touched the gate between WATCH and EXEC: write without the transaction.
        written = round_trip_packed(client, writes, write_count)
    elif isinstance(written, Exception):
        raise written
    return raise_error_replies(written), raise_error_replies(replies[at_exec + 1:])


def store_heartbeats(node_id: uuid.UUID, items: list[ValidHeartbeat], now: datetime) -> None:
    """Write accepted heartbeats of one node to Redis: live cache, presence, last seen and
    the pending queue, in one round trip behind the node's rate limit (RateLimited when it
    refuses: nothing written); queue an early flush when enough is pending.

    The round trip: [the limit's WATCH and check, MULTI], the node's writes (node_write),
    XADD of the points to the pending queue, INCRBY of the pending count, SADD of the node
    to the last-seen dirty set, [EXEC]; then two reads outside the transaction: whether an
    early flush is queued (in the steady state it is: no round trip of request_early_flush's
    own) and the node epoch, which keeps this process's in-memory node cache trusted.
    """
    handle = get_redis()
    prefix = handle.prefix
    node = str(node_id)
    keys = node_keys(prefix, node)
    now_ms = to_ms(now)
    newest = items[0] if len(items) == 1 else max(items, key=lambda v: v.ts_ms)
    points = [Point(*r) for v in items for r in v.results]
    series_points = [Point(NODE_SERIES, v.ts_ms, *v.summary) for v in items
                     if v.summary is not None]
    series_points += points
    seen: dict[str, object] = {"last_seen_ms": now_ms}
    if newest.config_version is not None:
        seen["config_version"] = newest.config_version
    if newest.agent_version is not None:
        seen["agent_version"] = newest.agent_version
    if newest.metadata:
        # The app's JSON provider: orjson, the standard library for what orjson refuses.
        seen["metadata"] = current_app.json.encode(newest.metadata)
    write = node_write(prefix, node, series_points, now_ms, present_at=now, seen=seen)
    writes = [write.payload]
    count = write.count
    if points:
        writes += (keys.queue_head, bulk(pending.encode_points(points)))
        count += 1
    at_pending_count = count
    writes += (keys.count_head, bulk(len(points)), keys.mark_seen)
    count += 2
    read_epoch = node_lookup.epoch_command(prefix)
    started = node_lookup.epoch_clock()
    written, (flush_queued, epoch) = _write_round_trip(
        handle.client, guard_for(prefix, node), b"".join(writes), count,
        keys.flush_queued_read + command(*read_epoch), 2)
    node_lookup.observe_epoch(read_epoch, epoch, read_at=started)
    if written[at_pending_count] >= EARLY_FLUSH_PENDING and not flush_queued:
        try:
            request_early_flush()
        except Exception:  # the points are stored; the periodic flush takes them anyway
            log.warning("could not queue an early flush", exc_info=True)
