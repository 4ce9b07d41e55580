"""The audit trail (SPEC §4): every create, update, delete, rotate and revoke, and every
failed login, recorded in the same transaction as the change.

Services call `record(...)` before their commit, so the row and the change are written
together or not at all. Who acted and from where is the request's *audit context*, set
by the interface that took the request (`begin`/`set_actor`: the API per request, the
CLI as "system"), so services keep taking plain ids and values.

Details never hold a secret: callers pass only names, roles, changed field names and
non-secret values, and `record` drops any key that looks like one as a second guard.
"""

from __future__ import annotations

import contextvars
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select

from app.extensions import db
from app.models import AuditLog

_SECRET_WORDS = ("token", "password", "hash", "secret", "url")


@dataclass(frozen=True)
class Actor:
    kind: str  # user | api_token | node | system | anonymous
    id: str | None = None
    label: str | None = None


SYSTEM = Actor("system")
_actor: contextvars.ContextVar[Actor] = contextvars.ContextVar("audit_actor", default=SYSTEM)
_remote_addr: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "audit_remote_addr", default=None)


def begin(remote_addr: str | None) -> None:
    """A new request from `remote_addr`: nobody authenticated yet (pooled threads reuse
    their context, so every request starts here)."""
    _actor.set(Actor("anonymous"))
    _remote_addr.set((remote_addr or "")[:64] or None)


def end() -> None:
    """The request is over: what runs next in this thread outside a request (a CLI
    command, a task, a test fixture) acts as the system again, not as the last caller."""
    _actor.set(SYSTEM)
    _remote_addr.set(None)


def set_actor(kind: str, actor_id: uuid.UUID | str | None, label: str | None) -> None:
    _actor.set(Actor(kind, str(actor_id) if actor_id else None, (label or "")[:255] or None))


def current_actor() -> Actor:
    return _actor.get()


def record(action: str, object_type: str, object_id: Any = None,
           details: dict[str, Any] | None = None) -> None:
    """Add an audit row to the session; it is committed with the caller's change."""
    actor = _actor.get()
    db.session.add(AuditLog(
        actor_kind=actor.kind, actor_id=actor.id, actor_label=actor.label, action=action,
        object_type=object_type, object_id=None if object_id is None else str(object_id),
        details=_without_secrets(details or {}), remote_addr=_remote_addr.get()))


def _without_secrets(details: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in details.items()
            if not any(word in key.lower() for word in _SECRET_WORDS)}


def query(start: datetime | None, end: datetime | None, actor: str | None,
          action: str | None, page: int, per_page: int) -> tuple[list[AuditLog], dict]:
    """Rows newest first, filtered; `actor` matches the actor's id or label."""
    statement = select(AuditLog)
    if start is not None:
        statement = statement.where(AuditLog.at >= start)
    if end is not None:
        statement = statement.where(AuditLog.at < end)
    if actor:
        statement = statement.where(or_(AuditLog.actor_id == actor,
                                        AuditLog.actor_label == actor))
    if action:
        statement = statement.where(AuditLog.action == action)
    total = db.session.scalar(select(func.count()).select_from(statement.subquery()))
    rows = db.session.scalars(statement.order_by(AuditLog.at.desc(), AuditLog.id.desc())
                              .limit(per_page).offset((page - 1) * per_page)).all()
    pages = (total + per_page - 1) // per_page if total else 0
    return rows, {"page": page, "per_page": per_page, "total": total, "pages": pages}
