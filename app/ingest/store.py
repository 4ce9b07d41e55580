"""Storing accepted heartbeats: every write in one pipelined Redis round trip (SPEC §6).

`RoundTrip` gathers the commands and names the replies that are read back, so no caller
reads a reply by its position. `store_heartbeats` builds the heartbeat's round trip:

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

import json
import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

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
NODE_KEYS_MAX = 100_000  # nodes whose packed keys a process keeps


class _NodeKeys:
    """A node's keys as RESP bulk strings, packed once per process rather than per
    heartbeat (the hot path sends ~20 commands naming them)."""

    __slots__ = ("prefix", "node_id", "live", "seen", "presence_day", "presence", "mark_seen")

    def __init__(self, prefix: str, node_id: str) -> None:
        self.prefix, self.node_id = prefix, node_id
        self.live: dict[str, bytes] = {}
        self.seen = bulk(node_seen_key(prefix, node_id))
        self.presence_day, self.presence = "", b""
        self.mark_seen = command("SADD", seen_dirty_key(prefix), node_id)

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


class RoundTrip:
    """Commands for one pipelined round trip, packed: writes, then reads; the replies that
    matter are read by name. With a guard, the writes run only if it admits the request."""

    def __init__(self, guard: NodeLimitGuard | None = None) -> None:
        self.guard = guard
        self.writes: list[bytes] = []
        self.write_count = 0
        self.reads: list[bytes] = []
        self._slots: dict[str, tuple[bool, int]] = {}  # name -> (is a read, index)

    def add(self, payload: bytes, count: int = 1) -> None:
        self.writes.append(payload)
        self.write_count += count

    def add_named(self, name: str, packed_command: bytes) -> None:
        self._name(name, False, self.write_count)
        self.add(packed_command)

    def add_read(self, name: str, packed_command: bytes) -> None:
        """A command sent after the writes and outside the guard's transaction."""
        self._name(name, True, len(self.reads))
        self.reads.append(packed_command)

    def _name(self, name: str, is_read: bool, index: int) -> None:
        if name in self._slots:
            raise ValueError(f"reply slot {name!r} is taken")
        self._slots[name] = (is_read, index)

    def execute(self, client) -> dict[str, object]:
        """Run every command (raising the first error reply, or the guard's refusal: then
        nothing was written); the named replies."""
        if self.guard is None:
            replies = raise_error_replies(round_trip_packed(
                client, b"".join(self.writes + self.reads), self.write_count + len(self.reads)))
            writes, reads = replies[:self.write_count], replies[self.write_count:]
        else:
            writes, reads = self._guarded(client)
        return {name: (reads if is_read else writes)[index]
                for name, (is_read, index) in self._slots.items()}

    def _guarded(self, client) -> tuple[list, list]:
        guard = self.guard
        replies = round_trip_packed(
            client, b"".join([guard.head, _MULTI, *self.writes, _EXEC, *self.reads]),
            guard.head_count + 2 + self.write_count + len(self.reads))
        at_exec = guard.head_count + 1 + self.write_count
        guard.admit(replies[:guard.head_count])  # refused: EXEC discarded the writes
        raise_error_replies(replies[guard.head_count:at_exec])  # MULTI and the QUEUED
        writes = replies[at_exec]
        if writes is None:
            # Admitted (the hit is counted), but a refusal of this node by another client
            # touched the gate between WATCH and EXEC: write without the transaction.
            writes = round_trip_packed(client, b"".join(self.writes), self.write_count)
        elif isinstance(writes, Exception):
            raise writes
        return raise_error_replies(writes), raise_error_replies(replies[at_exec + 1:])


def store_heartbeats(node_id: uuid.UUID, items: list[ValidHeartbeat], now: datetime) -> None:
    """Write accepted heartbeats of one node to Redis: live cache, presence, last seen and
    the pending queue, in one round trip behind the node's rate limit (RateLimited when it
    refuses: nothing written); queue an early flush when enough is pending."""
    handle = get_redis()
    node = str(node_id)
    now_ms = to_ms(now)
    summaries = [Point(NODE_SERIES, v.ts_ms, *v.summary) for v in items
                 if v.summary is not None]
    points = [Point(*r) for v in items for r in v.results]
    newest = max(items, key=lambda v: v.ts_ms)
    seen = {"last_seen_ms": now_ms}
    if newest.config_version is not None:
        seen["config_version"] = newest.config_version
    if newest.agent_version is not None:
        seen["agent_version"] = newest.agent_version
    if newest.metadata:
        seen["metadata"] = json.dumps(newest.metadata, separators=(",", ":"))
    trip = RoundTrip(guard_for(handle.prefix, node))
    write = node_write(handle.prefix, node, summaries + points, now_ms, present_at=now,
                       seen=seen)
    trip.add(write.payload, write.count)
    if points:
        trip.add(command(*pending.append_command(handle.prefix, node, points)))
    trip.add_named("pending_points", command(*pending.count_command(handle.prefix, len(points))))
    trip.add(node_keys(handle.prefix, node).mark_seen)
    # Whether an early flush is queued already rides along: in the steady state (it is)
    # that saves request_early_flush's own round trip; it still sets the flag with NX.
    trip.add_read("flush_queued", command("EXISTS", flush_queued_key(handle.prefix)))
    # Keeps this process's reading of the node epoch fresh, so its in-memory node cache
    # needs no round trip of its own.
    read_epoch = node_lookup.epoch_command(handle.prefix)
    trip.add_read("node_epoch", command(*read_epoch))
    started = node_lookup.epoch_clock()
    replies = trip.execute(handle.client)
    node_lookup.observe_epoch(read_epoch, replies["node_epoch"], read_at=started)
    if replies["pending_points"] >= EARLY_FLUSH_PENDING and not replies["flush_queued"]:
        try:
            request_early_flush()
        except Exception:  # the points are stored; the periodic flush takes them anyway
            log.warning("could not queue an early flush", exc_info=True)
