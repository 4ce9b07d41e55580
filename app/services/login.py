"""Password login for the API and the dashboard alike, with the failed-login limit.

`PULSE_LOGIN_RATE_LIMIT` (e.g. `10/minute`, `0` = off) bounds failed logins per account
and per client address in a fixed window kept in Redis, so every Pulse process counts
the same failures, whichever interface they came through (SPEC §3, §10).
"""

from __future__ import annotations

import hashlib

from flask import current_app
from limits import parse

from app.errors import ApiError
from app.extensions import get_redis
from app.models import User
from app.services.auth import check_credentials


def _limit() -> tuple[int, int] | None:
    """(failures allowed, window seconds), or None when the limit is off."""
    raw = str(current_app.config.get("PULSE_LOGIN_RATE_LIMIT", "10/minute")).strip()
    if raw in ("", "0"):
        return None
    item = parse(raw)
    return item.amount, item.get_expiry()


def _keys(email: str, client_addr: str | None) -> list[str]:
    handle = get_redis()
    account = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    keys = [handle.key("loginfail", "account", account)]
    if client_addr:
        keys.append(handle.key("loginfail", "addr", client_addr))
    return keys


def login(email: str, password: str, client_addr: str | None) -> User:
    """The user these credentials belong to.

    Raises ApiError 429 ERR_RATE_LIMITED (with Retry-After) when the account or the
    address has failed too often in the window, checked before the password is, and 401
    ERR_INVALID_CREDENTIALS for wrong credentials (which count as a failure)."""
    limit = _limit()
    keys = _keys(email, client_addr) if limit else []
    client = get_redis().client
    if limit:
        allowed, window = limit
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.get(key)
            pipe.ttl(key)
        replies = pipe.execute()
        for count, ttl in zip(replies[::2], replies[1::2], strict=True):
            if count is not None and int(count) >= allowed:
                retry = str(max(1, ttl if ttl and ttl > 0 else window))
                raise ApiError(429, "ERR_RATE_LIMITED",
                               "Too many failed logins; try again later",
                               headers={"Retry-After": retry})
    user = check_credentials(email, password)
    if user is None:
        if limit:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.incr(key)
                pipe.expire(key, limit[1], nx=True)
            pipe.execute()
        raise ApiError(401, "ERR_INVALID_CREDENTIALS", "Wrong email or password")
    return user
