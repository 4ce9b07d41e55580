"""Users, login access tokens, API tokens and role checks."""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import event, select
from werkzeug.security import check_password_hash, generate_password_hash

from app.extensions import db
from app.models import ApiToken, Node, User
from app.models.user import ROLES
from app.tokens import API_PREFIX, NODE_PREFIX, hash_token, hashes_match, new_token

ROLE_RANK = {role: rank for rank, role in enumerate(ROLES)}
_ACCESS_SALT = "pulse-access-token"
_LAST_USED_RESOLUTION = timedelta(minutes=1)


class AuthError(Exception):
    pass


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user (login token), an API token, or a node."""

    kind: str  # "user" | "api_token" | "node"
    id: uuid.UUID
    role: str | None  # None for nodes: they hold no management role
    node_id: uuid.UUID | None = None

    def has_role(self, minimum: str) -> bool:
        return self.role is not None and ROLE_RANK[self.role] >= ROLE_RANK[minimum]


def role_at_least(role: str, minimum: str) -> bool:
    return ROLE_RANK[role] >= ROLE_RANK[minimum]


def create_user(email: str, password: str, role: str) -> User:
    if role not in ROLE_RANK:
        raise AuthError(f"role must be one of {', '.join(ROLES)}")
    if len(password) < 8:
        raise AuthError("password must have at least 8 characters")
    email = email.strip().lower()
    if db.session.scalar(select(User).where(User.email == email)):
        raise AuthError(f"user {email} exists")
    user = User(email=email, password_hash=generate_password_hash(password), role=role)
    db.session.add(user)
    db.session.commit()
    return user


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


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_ACCESS_SALT)


def issue_access_token(user: User) -> tuple[str, int]:
    expires_in = current_app.config["PULSE_ACCESS_TOKEN_SECONDS"]
    return _serializer().dumps({"uid": str(user.id)}), expires_in


def _principal_from_access_token(token: str) -> Principal | None:
    try:
        data = _serializer().loads(token, max_age=current_app.config["PULSE_ACCESS_TOKEN_SECONDS"])
        user_id = uuid.UUID(data["uid"])
    except (BadSignature, SignatureExpired, KeyError, ValueError, TypeError):
        return None
    # The signature and expiry are checked every time; the user's role comes from the
    # database through the short-lived principal cache.
    return _cached(f"user:{user_id}", lambda: _user_principal(user_id))


def _user_principal(user_id: uuid.UUID) -> Principal | None:
    user = db.session.get(User, user_id)
    return Principal("user", user.id, user.role) if user else None


def password_stamp(user: User) -> str:
    """A short digest of the user's password hash: a dashboard session carries it, so a
    password change ends every session opened with the old password."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def session_principal(user_id: str, stamp: str) -> Principal | None:
    """The principal of a dashboard session (user id and password stamp), or None when
    the user is gone or changed password. Through the same 5 s cache as access tokens."""
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


def create_api_token(name: str, role: str, created_by: uuid.UUID | None) -> tuple[ApiToken, str]:
    token = new_token(API_PREFIX)
    row = ApiToken(name=name, role=role, token_hash=hash_token(token), created_by=created_by)
    db.session.add(row)
    db.session.commit()
    return row, token


def revoke_api_token(token_id: uuid.UUID) -> ApiToken | None:
    row = db.session.get(ApiToken, token_id)
    if row is not None and row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        db.session.commit()
        forget_principals()
    return row


def _principal_from_api_token(token: str) -> Principal | None:
    row = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is None or row.revoked_at is not None or not hashes_match(row.token_hash, token):
        return None
    now = datetime.now(UTC)
    last = row.last_used_at
    if last is not None and last.tzinfo is None:
        last = last.replace(tzinfo=UTC)
    if last is None or now - last > _LAST_USED_RESOLUTION:
        row.last_used_at = now  # written at most once a minute per token
        db.session.commit()
    return Principal("api_token", row.id, row.role)


def _principal_from_node_token(token: str) -> Principal | None:
    node = db.session.scalar(select(Node).where(Node.token_hash == hash_token(token)))
    if node is None or not hashes_match(node.token_hash, token):
        return None
    return Principal("node", node.id, None, node_id=node.id)


# Resolved user and API-token principals, kept in-process for at most 5 s (SPEC §2:
# a revoked token stops working within 5 s everywhere; at once in the revoking process).
PRINCIPAL_CACHE_SECONDS = 5.0
_PRINCIPAL_CACHE_MAX = 10_000
_principals: dict[str, tuple[float, Principal]] = {}


def authenticate(token: str, allow_node: bool = False) -> Principal | None:
    """Resolve a bearer token to a principal, or None."""
    if not token:
        return None
    if token.startswith(NODE_PREFIX):
        return _principal_from_node_token(token) if allow_node else None
    if token.startswith(API_PREFIX):
        return _cached(f"api:{hash_token(token)}", lambda: _principal_from_api_token(token))
    return _principal_from_access_token(token)


def _cached(name: str, resolve) -> Principal | None:
    # Keyed per app too: apps in one process (tests) may differ in secret and database.
    key = f"{id(current_app._get_current_object())}:{name}"
    now = time.monotonic()
    cached = _principals.get(key)
    if cached is not None and cached[0] > now:
        return cached[1]
    principal = resolve()
    if principal is not None:
        if len(_principals) >= _PRINCIPAL_CACHE_MAX:
            _principals.clear()
        _principals[key] = (now + PRINCIPAL_CACHE_SECONDS, principal)
    return principal


def forget_principals(*_args) -> None:
    """Drop this process's cached principals (after a revocation or a user change)."""
    _principals.clear()


# A user demoted or deleted, or an API token revoked, loses its rights in this process at
# once; other processes' cached entries expire within PRINCIPAL_CACHE_SECONDS.
for _model in (User, ApiToken):
    event.listen(_model, "after_update", forget_principals)
    event.listen(_model, "after_delete", forget_principals)
