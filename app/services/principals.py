"""Who a bearer token is: resolved principals, cached per process and invalidated
through Redis, so that a revoked API token, a changed role or password, or a deleted user
takes effect in every process at once (SPEC §2). Login access tokens and dashboard
sessions carry the user's password stamp: a password change ends them.

Each process keeps what it resolved together with the *auth epoch* (a Redis key set to a
new random value by every such change) it read before resolving. An entry is used only
while the epoch read for the current request is the same — one small Redis command per
authenticated request instead of a database query. A commit that changes rights bumps the
epoch before it (Redis down: the change is refused, 503) and again after it (voiding what
a request resolved between the two), so no process can keep serving the old rights. With
Redis unreachable, principals are resolved from the database every time and not cached.
Entries also expire after PRINCIPAL_MAX_AGE_SECONDS, which bounds an invalidation lost by
a Redis that lost its last second of writes.

Node tokens are resolved by the ingest's node lookup, which is invalidated the same way.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis
from flask import current_app, has_app_context
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session

from app.extensions import db, get_redis
from app.ingest.node_lookup import resolve_node_token
from app.models import ApiToken, User
from app.models.user import ROLES
from app.tokens import API_PREFIX, NODE_PREFIX, hash_token, hashes_match

log = logging.getLogger(__name__)
ROLE_RANK = {role: rank for rank, role in enumerate(ROLES)}
ACCESS_SALT = "pulse-access-token"
PRINCIPAL_MAX_AGE_SECONDS = 60.0
LAST_USED_RESOLUTION = timedelta(minutes=1)
_CACHE_MAX = 10_000
# (app, name) -> (expires at, auth epoch it was resolved under, principal)
_cache: dict[tuple[int, str], tuple[float, bytes, Principal]] = {}


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user (login token), an API token, or a node."""

    kind: str  # "user" | "api_token" | "node"
    id: uuid.UUID
    role: str | None  # None for nodes: they hold no management role
    node_id: uuid.UUID | None = None
    label: str | None = None  # the user's email or the token's name (audit trail)

    def has_role(self, minimum: str) -> bool:
        return self.role is not None and ROLE_RANK[self.role] >= ROLE_RANK[minimum]


def auth_epoch_key(prefix: str) -> str:
    return f"{prefix}:auth:epoch"


def authenticate(token: str, allow_node: bool = False) -> Principal | None:
    """Resolve a bearer token to a principal, or None."""
    if not token:
        return None
    if token.startswith(NODE_PREFIX):
        if not allow_node:
            return None
        node_id = resolve_node_token(token)
        return Principal("node", node_id, None, node_id=node_id,
                         label=f"node {node_id}") if node_id else None
    if token.startswith(API_PREFIX):
        return _cached(f"api:{hash_token(token)}", lambda: _from_api_token(token))
    return _from_access_token(token)


def serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=ACCESS_SALT)


def access_token_for(user: User) -> str:
    """A login access token: the user and the stamp of their password (password_stamp),
    so a password change ends every access token issued before it, as it ends sessions."""
    return serializer().dumps({"uid": str(user.id), "pw": password_stamp(user)})


def _from_access_token(token: str) -> Principal | None:
    try:
        data = serializer().loads(token, max_age=current_app.config["PULSE_ACCESS_TOKEN_SECONDS"])
        user_id, stamp = uuid.UUID(data["uid"]), str(data["pw"])
    except (BadSignature, SignatureExpired, KeyError, ValueError, TypeError):
        return None  # a token without a stamp predates them: its password is unknown
    # The signature and expiry are checked every time; the user's role and password stamp
    # come from the database through the epoch-checked cache (a password change bumps the
    # epoch, so every process re-reads the stamp at once).
    return _cached(f"user:{user_id}:{stamp}", lambda: _user_principal(user_id, stamp))


def _user_principal(user_id: uuid.UUID, stamp: str) -> Principal | None:
    user = db.session.get(User, user_id)
    if user is None or not hmac.compare_digest(password_stamp(user), stamp):
        return None
    return Principal("user", user.id, user.role, label=user.email)


def _from_api_token(token: str) -> Principal | None:
    row = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is None or row.revoked_at is not None or not hashes_match(row.token_hash, token):
        return None
    now = datetime.now(UTC)
    last = row.last_used_at
    if last is not None and last.tzinfo is None:
        last = last.replace(tzinfo=UTC)
    if last is None or now - last > LAST_USED_RESOLUTION:
        row.last_used_at = now  # written when resolved, at most once a minute per token
        db.session.commit()
    return Principal("api_token", row.id, row.role, label=row.name)


def _cached(name: str, resolve) -> Principal | None:
    # Keyed per app too: apps in one process (tests) differ in database and Redis prefix.
    key = (_app_key(), name)
    epoch = read_epoch()
    now = time.monotonic()
    hit = _cache.get(key)
    if hit is not None and epoch is not None and hit[1] == epoch and hit[0] > now:
        return hit[2]
    principal = resolve()
    if principal is None:
        _cache.pop(key, None)
    elif epoch is not None:
        if len(_cache) >= _CACHE_MAX:
            _cache.clear()
        _cache[key] = (now + PRINCIPAL_MAX_AGE_SECONDS, epoch, principal)
    return principal


def _app_key() -> int:
    return id(current_app._get_current_object())


def _forget_local() -> None:
    """Drop this app's entries (other apps in the process, as other processes, rely on
    the epoch alone)."""
    app_key = _app_key()
    for key in [k for k in _cache if k[0] == app_key]:
        _cache.pop(key, None)


def read_epoch() -> bytes | None:
    """The auth epoch (a missing key is recreated with a new value, so a lost epoch is
    never read as an old one); None when Redis cannot be reached."""
    handle = get_redis()
    fresh = os.urandom(8).hex()
    try:
        current = handle.client.set(auth_epoch_key(handle.prefix), fresh, nx=True, get=True)
    except redis.RedisError as exc:
        log.warning("auth epoch unreadable, resolving principals uncached: %s", exc)
        return None
    return current if current is not None else fresh.encode()


def bump_epoch() -> None:
    """Void every process's cached principals (raises when Redis is unreachable)."""
    handle = get_redis()
    handle.client.set(auth_epoch_key(handle.prefix), uuid.uuid4().hex)


# Any commit that changes who may do what — a user's role or password, a deleted user, a
# revoked API token — bumps the epoch before and after it, whoever made the change
# (services, CLI, dashboard, a test editing rows): session events, not a call to forget.
_RIGHTS = {User: ("role", "password_hash"), ApiToken: ("role", "revoked_at", "token_hash")}
_FLAG = "pulse_rights_changed"


def _rights_changed(target, deleted: bool) -> bool:
    fields = _RIGHTS.get(type(target))
    if fields is None:
        return False
    if deleted:
        return True
    state = inspect(target)
    return any(state.attrs[name].history.has_changes() for name in fields)


@event.listens_for(Session, "before_flush")
def _note_rights_changes(session, flush_context, instances) -> None:
    if any(_rights_changed(obj, False) for obj in session.dirty) or any(
            _rights_changed(obj, True) for obj in session.deleted):
        session.info[_FLAG] = True


@event.listens_for(Session, "before_commit")
def _void_before_commit(session) -> None:
    session.flush()  # what is still pending is noted by _note_rights_changes
    if session.info.get(_FLAG) and has_app_context():
        bump_epoch()  # Redis unreachable: the commit fails (503); nothing changed


@event.listens_for(Session, "after_commit")
def _void_after_commit(session) -> None:
    if not session.info.pop(_FLAG, False) or not has_app_context():
        return
    _forget_local()
    try:
        bump_epoch()  # voids what a request resolved between the first bump and the commit
    except redis.RedisError:
        log.warning("second auth-epoch bump failed; entries expire within %ss",
                    PRINCIPAL_MAX_AGE_SECONDS)


@event.listens_for(Session, "after_rollback")
def _forget_flag(session) -> None:
    session.info.pop(_FLAG, None)


def password_stamp(user: User) -> str:
    """A short digest of the user's password hash: a dashboard session carries it, so a
    password change ends every session opened with the old password."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def session_principal(user_id: str, stamp: str) -> Principal | None:
    """The principal of a dashboard session (user id and password stamp), or None when
    the user is gone or changed password. Through the same cache (and epoch) as
    access tokens, so a deleted user's session ends everywhere at once."""
    try:
        uid = uuid.UUID(str(user_id))
    except ValueError:
        return None

    def resolve() -> Principal | None:
        user = db.session.get(User, uid)
        if user is None or password_stamp(user) != stamp:
            return None
        return Principal("user", user.id, user.role)

    return _cached(f"session:{uid}:{stamp}", resolve)
