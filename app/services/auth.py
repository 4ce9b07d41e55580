"""Users, login (with its brute-force limit), access tokens and API tokens.

The one login service the API and the dashboard share. A change to who may do what applies
in every process at once (app.services.principals); every change is audited in its own
transaction.
"""

from __future__ import annotations

import math
import time
import uuid
from datetime import UTC, datetime

from flask import Flask, current_app
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash

from app.errors import ApiError
from app.extensions import db, get_redis
from app.models import ApiToken, User
from app.models.user import ROLES
from app.services import audit
from app.services.principals import (  # noqa: F401 (re-exported for the interfaces)
    ROLE_RANK,
    Principal,
    access_token_for,
    authenticate,
    password_stamp,
    serializer,
    session_principal,
)
from app.tokens import API_PREFIX, hash_token, new_token

MIN_PASSWORD = 8


class AuthError(Exception):
    pass


def role_at_least(role: str, minimum: str) -> bool:
    return ROLE_RANK[role] >= ROLE_RANK[minimum]


# --- users ---------------------------------------------------------------------------


def create_user(email: str, password: str, role: str) -> User:
    if role not in ROLE_RANK:
        raise AuthError(f"role must be one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"password must have at least {MIN_PASSWORD} characters")
    email = email.strip().lower()
    if db.session.scalar(select(User).where(User.email == email)):
        raise AuthError(f"user {email} exists")
    user = User(id=uuid.uuid4(), email=email, password_hash=generate_password_hash(password),
                role=role)
    db.session.add(user)
    audit.record("user.create", "user", user.id, {"email": email, "role": role})
    db.session.commit()
    return user


def get_user(user_id) -> User:
    try:
        user = db.session.get(User, user_id if isinstance(user_id, uuid.UUID)
                              else uuid.UUID(str(user_id)))
    except ValueError:
        user = None
    if user is None:
        raise ApiError(404, "ERR_USER_NOT_FOUND", f"User {user_id} does not exist")
    return user


def _admins_left_without(user: User) -> int:
    return db.session.scalar(select(func.count()).select_from(User).where(
        User.role == "admin", User.id != user.id))


def update_user(user: User, role: str | None = None, password: str | None = None) -> User:
    """Change a user's role or password; at once in every process. A new password ends
    the user's access tokens and dashboard sessions (they carry the old password's stamp)."""
    changed: list[str] = []
    if role is not None and role != user.role:
        if user.role == "admin" and not _admins_left_without(user):
            raise ApiError(409, "ERR_LAST_ADMIN", "The last admin cannot lose the role")
        user.role = role
        changed.append("role")
    if password is not None:
        user.password_hash = generate_password_hash(password)
        changed.append("password")
    if changed:
        audit.record("user.update", "user", user.id, {"changed": changed, "role": user.role})
        db.session.commit()
    return user


def delete_user(user: User) -> None:
    """Delete a user: their access tokens stop working in every process at once."""
    if user.role == "admin" and not _admins_left_without(user):
        raise ApiError(409, "ERR_LAST_ADMIN", "The last admin cannot be deleted")
    audit.record("user.delete", "user", user.id, {"email": user.email})
    db.session.delete(user)
    db.session.commit()


# --- login -----------------------------------------------------------------------------


def init_login_limit(app: Flask) -> None:
    """PULSE_LOGIN_RATE_LIMIT on the `limits` library: counters in Redis (every process
    counts together), in memory in embedded mode."""
    spec = app.config.get("PULSE_LOGIN_RATE_LIMIT", "0")
    if spec in ("", "0"):
        app.extensions["pulse_login_limit"] = None
        return
    storage = storage_from_string(app.config.get("REDIS_URL") or "memory://")
    app.extensions["pulse_login_limit"] = (MovingWindowRateLimiter(storage), parse(spec))


def login(email: str, password: str, client_addr: str | None) -> User:
    """The user these credentials belong to.

    Failed logins are limited per account and per client address: over the limit, 429
    with Retry-After, before the password is even checked (a guess then tells nothing).
    A failure counts only against its own account and address, so nobody's failures on
    other accounts slow a user who knows their password.
    """
    account = email.strip().lower()
    scopes = (("account", account), ("address", client_addr or "unknown"))
    limiter = current_app.extensions.get("pulse_login_limit")
    namespace = get_redis().prefix + ":login"
    if limiter is not None:
        strategy, limit = limiter
        for scope, key in scopes:
            if not strategy.test(limit, namespace, scope, key):
                reset_at = strategy.get_window_stats(limit, namespace, scope, key).reset_time
                retry_after = max(1, math.ceil(reset_at - time.time()))
                raise ApiError(429, "ERR_RATE_LIMITED",
                               f"Too many failed logins for this {scope}; retry later",
                               {"retry_after_seconds": retry_after},
                               headers={"Retry-After": str(retry_after)})
    user = check_credentials(account, password)
    if user is not None:
        return user
    if limiter is not None:
        for scope, key in scopes:
            strategy.hit(limit, namespace, scope, key)
    audit.record("login.failure", "user", None, {"email": account[:255]})
    db.session.commit()
    raise ApiError(401, "ERR_INVALID_CREDENTIALS", "Wrong email or password")


def check_credentials(email: str, password: str) -> User | None:
    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        # Same work as a real check, so timing does not reveal which emails exist.
        check_password_hash(_dummy_hash(), password)
        return None
    return user if check_password_hash(user.password_hash, password) else None


_DUMMY: list[str] = []


def _dummy_hash() -> str:
    if not _DUMMY:
        _DUMMY.append(generate_password_hash("not-a-real-password"))
    return _DUMMY[0]


def issue_access_token(user: User) -> tuple[str, int]:
    expires_in = current_app.config["PULSE_ACCESS_TOKEN_SECONDS"]
    return access_token_for(user), expires_in


# --- API tokens --------------------------------------------------------------------------


def create_api_token(name: str, role: str, created_by: uuid.UUID | None) -> tuple[ApiToken, str]:
    token = new_token(API_PREFIX)
    row = ApiToken(id=uuid.uuid4(), name=name, role=role, token_hash=hash_token(token),
                   created_by=created_by)
    db.session.add(row)
    audit.record("api_token.create", "api_token", row.id, {"name": name, "role": role})
    db.session.commit()
    return row, token


def revoke_api_token(token_id: uuid.UUID) -> ApiToken | None:
    """Revoke an API token: it stops working in every process at once."""
    row = db.session.get(ApiToken, token_id)
    if row is not None and row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        audit.record("api_token.revoke", "api_token", row.id, {"name": row.name})
        db.session.commit()
    return row
