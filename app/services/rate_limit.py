"""Per-node request limit (PULSE_NODE_RATE_LIMIT) on the `limits` library.

Counters live in Redis (the live-cache server), so the limit holds across every API
process; embedded mode counts in memory.
"""

from __future__ import annotations

import math
import time

from flask import Flask, current_app
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from app.services.errors import ApiError


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
    if limiter.hit(limit, "node", node_id):
        return
    reset_at = limiter.get_window_stats(limit, "node", node_id).reset_time
    retry_after = max(1, math.ceil(reset_at - time.time()))
    raise ApiError(429, "ERR_RATE_LIMITED", f"More than {limit} heartbeat requests",
                   {"limit": str(limit), "retry_after_seconds": retry_after},
                   headers={"Retry-After": str(retry_after)})
