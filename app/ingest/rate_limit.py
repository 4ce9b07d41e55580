"""Per-node request limit (PULSE_NODE_RATE_LIMIT) on the `limits` library.

Counters live in Redis (the live-cache server), so the limit holds across every API
process; embedded mode counts in memory.

With Redis, a hit runs the library's own moving-window script on the library's own key
(so `limits` reads and resets exactly what was counted), but sent through redis_wire:
the library's call through redis-py's Script object cost as much client CPU per
heartbeat as the rest of the ingest (docs/benchmarks.md).
"""

from __future__ import annotations

import math
import time

import redis
from flask import Flask, current_app
from limits import parse
from limits.storage import RedisStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from app.errors import ApiError
from app.ingest.redis_wire import raise_error_replies, round_trip


def init_rate_limit(app: Flask) -> None:
    spec = str(app.config.get("PULSE_NODE_RATE_LIMIT", "0")).strip()
    if spec in ("", "0"):
        app.extensions["pulse_rate_limit"] = None
        return
    limit = parse(spec)
    storage = storage_from_string(app.config.get("REDIS_URL") or "memory://")
    app.extensions["pulse_rate_limit"] = (MovingWindowRateLimiter(storage), limit)


def check_node_rate(node_id: str) -> None:
    """429 with Retry-After when the node is over its limit."""
    configured = current_app.extensions.get("pulse_rate_limit")
    if configured is None:
        return
    limiter, limit = configured
    if _hit(limiter, limit, node_id):
        return
    reset_at = limiter.get_window_stats(limit, "node", node_id).reset_time
    retry_after = max(1, math.ceil(reset_at - time.time()))
    raise ApiError(429, "ERR_RATE_LIMITED", f"More than {limit} heartbeat requests",
                   {"limit": str(limit), "retry_after_seconds": retry_after},
                   headers={"Retry-After": str(retry_after)})


def _hit(limiter: MovingWindowRateLimiter, limit, node_id: str) -> bool:
    """limiter.hit(limit, "node", node_id), in one lean round trip on Redis storage."""
    storage = limiter.storage
    if not isinstance(storage, RedisStorage):
        return limiter.hit(limit, "node", node_id)
    script = storage.lua_acquire_moving_window
    key = storage.prefixed_key(limit.key_for("node", node_id))
    command = ("EVALSHA", script.sha, 1, key, time.time(), limit.amount, limit.get_expiry(), 1)
    client = storage.get_connection()
    replies = round_trip(client, [command])
    if isinstance(replies[0], redis.exceptions.NoScriptError):  # first use, Redis restarted
        client.script_load(script.script)
        replies = round_trip(client, [command])
    return bool(raise_error_replies(replies)[0])
