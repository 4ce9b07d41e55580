"""Per-node heartbeat request limit (PULSE_NODE_RATE_LIMIT, SPEC default 120/minute).

Strategy: the `limits` library's moving window (at most N requests in any window of the
limit's length), kept on Redis as that library keeps it: a list of the hits' timestamps,
newest first, trimmed to N, under the key its RedisStorage would use (`window_key`). So
the library reads what ingest counted, and tests hold its MovingWindowRateLimiter as the
reference. Counters live in Redis: every API process counts together; embedded mode runs
the same script on fakeredis (Lua from lupa).

**Checked in the write's own round trip.** A request that stores something is counted by
a `NodeLimitGuard` that app.ingest.store puts in front of the writes:

    WATCH <gate>  EVAL <CHECK_SCRIPT> <window> <gate>  MULTI  <writes>  EXEC  <reads>

The script records the hit when the window has room; when it has none it touches the
gate key (SET then DEL, so the key never stays) and Redis discards the queued writes at
EXEC, because a watched key changed. A refused request so stores nothing, and an accepted
one pays no round trip of its own (a separate one held the default configuration at
0.43-0.53 x bare Flask; docs/benchmarks.md). EVAL, not EVALSHA: a script missing from
Redis's cache (after a restart) would be an error reply while the writes went ahead
unchecked; EVAL carries its source, so the check cannot be skipped.

A request that stores nothing (a 400, a batch whose every item is refused) is counted by
`count_request` (the script alone) before its answer: every request still counts once,
and an over-limit node gets 429 whatever its body.

**Refusals known in-process.** A refusal also says when the window frees a slot (its
oldest hit + the window length). Until then Redis would refuse that node whatever other
processes do (they can only add hits), so this process answers the node 429 at once,
before reading the body (`refuse_known`): a runaway Beacon costs a dict lookup, not a
JSON parse and a round trip. Nothing is counted for these, as the library counts no
refused hit either.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import cached_property

from flask import Flask, current_app
from limits import RateLimitItem, parse

from app.errors import ApiError
from app.extensions import get_redis
from app.ingest.redis_wire import bulk, command, command_head, round_trip_packed
from app.redis_keys import node_rate_gate_key

# KEYS[1]: the node's window; KEYS[2]: the gate key the round trip WATCHes.
# ARGV: now (epoch seconds), the limit, the window in seconds.
# Returns 1 when the hit is recorded; else the oldest hit of the full window, after
# touching the gate. An error reply from the window (another type at the key) refuses too.
CHECK_SCRIPT = """\
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local oldest = redis.pcall('LINDEX', KEYS[1], limit - 1)
if type(oldest) == 'table' or (oldest and tonumber(oldest) >= now - window) then
    redis.call('SET', KEYS[2], '1')
    redis.call('DEL', KEYS[2])
    return oldest
end
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, limit - 1)
redis.call('EXPIRE', KEYS[1], window)
return 1
"""
REFUSED_MAX = 10_000  # nodes remembered as refused, per app
KEYS_MAX = 100_000  # nodes whose key names are kept, per app
clock = time.time  # seconds since the epoch; tests replace it


class RateLimited(ApiError):
    """429 ERR_RATE_LIMITED with Retry-After."""

    def __init__(self, limit: RateLimitItem, retry_after_seconds: float) -> None:
        retry_after = max(1, math.ceil(retry_after_seconds))
        super().__init__(429, "ERR_RATE_LIMITED", f"More than {limit} heartbeat requests",
                         {"limit": str(limit), "retry_after_seconds": retry_after},
                         headers={"Retry-After": str(retry_after)})


@dataclass
class NodeRateLimit:
    """The configured limit of an app, and the nodes it saw refused (node id -> when the
    window frees a slot, epoch seconds)."""

    limit: RateLimitItem
    refused_until: dict[str, float] = field(default_factory=dict)
    # (prefix, node id) -> the node's packed check (keys()): built once, not per request
    _keys: dict[tuple[str, str], tuple[bytes, bytes]] = field(default_factory=dict)

    def keys(self, prefix: str, node_id: str) -> tuple[bytes, bytes]:
        """The node's check, packed once: (WATCH <gate>, EVAL up to its `now` argument)."""
        found = self._keys.get((prefix, node_id))
        if found is None:
            if len(self._keys) >= KEYS_MAX:
                self._keys.clear()
            gate = node_rate_gate_key(prefix, node_id)
            window = window_key(prefix, self.limit, node_id)
            script_and_keys = (CHECK_SCRIPT, 2, window, gate)
            found = self._keys[prefix, node_id] = (
                command("WATCH", gate),
                command_head("EVAL", 8) + b"".join(bulk(arg) for arg in script_and_keys))
        return found

    @cached_property
    def check_tail(self) -> bytes:
        """EVAL's arguments after `now`: the limit and the window in seconds."""
        return bulk(self.limit.amount) + bulk(self.limit.get_expiry())

    def refuse(self, node_id: str, oldest_hit: float, now: float) -> RateLimited:
        free_at = oldest_hit + self.limit.get_expiry()
        if len(self.refused_until) >= REFUSED_MAX:
            # list() copies in one step: other threads of the worker may change the dict
            for node, until in list(self.refused_until.items()):
                if until <= now:
                    self.refused_until.pop(node, None)
            if len(self.refused_until) >= REFUSED_MAX:
                self.refused_until.clear()
        self.refused_until[node_id] = free_at
        return RateLimited(self.limit, free_at - now)


def init_rate_limit(app: Flask) -> None:
    spec = str(app.config.get("PULSE_NODE_RATE_LIMIT", "0")).strip()
    app.extensions["pulse_rate_limit"] = (None if spec in ("", "0")
                                          else NodeRateLimit(parse(spec)))


def _configured() -> NodeRateLimit | None:
    return current_app.extensions.get("pulse_rate_limit")


def window_key(prefix: str, limit: RateLimitItem, node_id: str) -> str:
    """Where the node's hits are: the key `limits`' RedisStorage, created with
    key_prefix=f"{prefix}:limits", uses for hit(limit, "node", "{<node_id>}") (the braces
    make the node id the key's hash tag, as for every per-node key)."""
    return f"{prefix}:limits:{limit.key_for('node', '{' + node_id + '}')}"


def refuse_known(node_id: str) -> None:
    """Raise RateLimited when this process saw the node refused and its window has no free
    slot yet (Redis would refuse it too); nothing is read, written or counted."""
    configured = _configured()
    if configured is None:
        return
    free_at = configured.refused_until.get(node_id)
    if free_at is None:
        return
    now = clock()
    if free_at > now:
        raise RateLimited(configured.limit, free_at - now)
    configured.refused_until.pop(node_id, None)


class NodeLimitGuard:
    """The limit check in front of one round trip's writes (app.ingest.store sends `head`,
    packed: WATCH <gate> and the check script; then MULTI, the writes and EXEC, and gives
    `admit` the replies of the head's head_count commands)."""

    head_count = 2

    def __init__(self, configured: NodeRateLimit, prefix: str, node_id: str) -> None:
        self._configured = configured
        self.node_id = node_id
        self.now = clock()
        watch, check_head = configured.keys(prefix, node_id)
        self.check = check_head + bulk(repr(self.now)) + configured.check_tail
        self.head = watch + self.check

    def admit(self, replies: list) -> None:
        """Return when the hit was recorded; raise RateLimited when it was refused (the
        writes behind it were discarded), or the script's error reply."""
        verdict = replies[-1]
        if isinstance(verdict, Exception):
            raise verdict
        if verdict != 1:
            raise self._configured.refuse(self.node_id, float(verdict), self.now)


def guard_for(prefix: str, node_id: str) -> NodeLimitGuard | None:
    """The guard for a write round trip of this node; None when the limit is off."""
    configured = _configured()
    return None if configured is None else NodeLimitGuard(configured, prefix, node_id)


def count_request(node_id: str) -> None:
    """Count a request that stores nothing, in a round trip of its own; RateLimited when
    the node is over its limit."""
    configured = _configured()
    if configured is None:
        return
    handle = get_redis()
    guard = NodeLimitGuard(configured, handle.prefix, node_id)
    # No WATCH: there are no writes to discard (the script still touches the gate key).
    guard.admit(round_trip_packed(handle.client, guard.check, 1))
