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
the writes themselves (figures in docs/benchmarks.md). The client side stays cheap because
redis_wire packs and parses in C.
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
from app.ingest.redis_wire import raise_error_replies, round_trip
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
        key = node_seen_key(prefix, node_id)
        hset: list = ["HSET", key]
        for field, value in seen.items():
            hset += (field, value)
        commands += (tuple(hset), ("HSETNX", key, "first_seen_ms", seen["last_seen_ms"]))
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


class RoundTrip:
    """Commands for one pipelined round trip: writes, then reads; the replies that matter
    are read by name. With a guard, the writes run only if it admits the request."""

    def __init__(self, guard: NodeLimitGuard | None = None) -> None:
        self.guard = guard
        self.commands: list[tuple] = []  # the writes
        self.reads: list[tuple] = []
        self._slots: dict[str, tuple[bool, int]] = {}  # name -> (is a read, index)

    def add(self, *commands: tuple) -> None:
        self.commands.extend(commands)

    def add_named(self, name: str, command: tuple) -> None:
        self._name(name, False, len(self.commands))
        self.commands.append(command)

    def add_read(self, name: str, command: tuple) -> None:
        """A command sent after the writes and outside the guard's transaction."""
        self._name(name, True, len(self.reads))
        self.reads.append(command)

    def _name(self, name: str, is_read: bool, index: int) -> None:
        if name in self._slots:
            raise ValueError(f"reply slot {name!r} is taken")
        self._slots[name] = (is_read, index)

    def execute(self, client) -> dict[str, object]:
        """Run every command (raising the first error reply, or the guard's refusal: then
        nothing was written); the named replies."""
        if self.guard is None:
            replies = execute(client, self.commands + self.reads)
            writes, reads = replies[:len(self.commands)], replies[len(self.commands):]
        else:
            writes, reads = self._guarded(client)
        return {name: (reads if is_read else writes)[index]
                for name, (is_read, index) in self._slots.items()}

    def _guarded(self, client) -> tuple[list, list]:
        head = self.guard.commands
        replies = round_trip(client, [*head, ("MULTI",), *self.commands, ("EXEC",),
                                      *self.reads])
        at_exec = len(head) + 1 + len(self.commands)
        self.guard.admit(replies[:len(head)])  # refused: EXEC discarded the writes
        raise_error_replies(replies[len(head):at_exec])  # MULTI and the QUEUED
        writes = replies[at_exec]
        if writes is None:
            # Admitted (the hit is counted), but a refusal of this node by another client
            # touched the gate between WATCH and EXEC: write without the transaction.
            writes = execute(client, self.commands)
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
    trip.add(*node_write(handle.prefix, node, summaries + points, now_ms, present_at=now,
                         seen=seen).commands)
    if points:
        trip.add(pending.append_command(handle.prefix, node, points))
    trip.add_named("pending_points", pending.count_command(handle.prefix, len(points)))
    trip.add(("SADD", seen_dirty_key(handle.prefix), node))
    # Whether an early flush is queued already rides along: in the steady state (it is)
    # that saves request_early_flush's own round trip; it still sets the flag with NX.
    trip.add_read("flush_queued", ("EXISTS", flush_queued_key(handle.prefix)))
    # Keeps this process's reading of the node epoch fresh, so its in-memory node cache
    # needs no round trip of its own.
    read_epoch = node_lookup.epoch_command(handle.prefix)
    trip.add_read("node_epoch", read_epoch)
    started = node_lookup.epoch_clock()
    replies = trip.execute(handle.client)
    node_lookup.observe_epoch(read_epoch, replies["node_epoch"], read_at=started)
    if replies["pending_points"] >= EARLY_FLUSH_PENDING and not replies["flush_queued"]:
        try:
            request_early_flush()
        except Exception:  # the points are stored; the periodic flush takes them anyway
            log.warning("could not queue an early flush", exc_info=True)
