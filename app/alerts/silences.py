"""Silences: maintenance windows. Alerts still open and close while silenced; their
events are recorded with `silenced`, and nobody is notified."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import delete, select

from app.errors import ApiError
from app.extensions import db
from app.models import AlertRule, Node, Probe, Silence


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def active_silences(now: datetime) -> list[Silence]:
    return list(db.session.scalars(select(Silence).where(
        Silence.starts_at <= now, Silence.ends_at > now)))


def silenced(silences: Sequence[Silence], rule_id, node_id: str | None,
             probe_id: str | None) -> bool:
    """Whether one of `silences` covers this rule and subject: every field a silence
    names must match (a silence naming none covers everything)."""
    for s in silences:
        if s.rule_id is not None and str(s.rule_id) != str(rule_id):
            continue
        if s.node_id is not None and str(s.node_id) != node_id:
            continue
        if s.probe_id is not None and str(s.probe_id) != probe_id:
            continue
        return True
    return False


def create_silence(data: dict, created_by: uuid.UUID | None = None) -> Silence:
    starts, ends = _aware(data["starts_at"]), _aware(data["ends_at"])
    if ends <= starts:
        raise ApiError(400, "ERR_INVALID_SILENCE", "ends_at must be after starts_at",
                       {"fields": {"ends_at": ["must be after starts_at"]}})
    for name, model, code in (("node_id", Node, "ERR_NODE_NOT_FOUND"),
                              ("probe_id", Probe, "ERR_PROBE_NOT_FOUND"),
                              ("rule_id", AlertRule, "ERR_RULE_NOT_FOUND")):
        if data.get(name) is not None and db.session.get(model, data[name]) is None:
            raise ApiError(400, code, f"{name}: no such object", {"fields": {name: ["unknown"]}})
    silence = Silence(node_id=data.get("node_id"), probe_id=data.get("probe_id"),
                      rule_id=data.get("rule_id"), starts_at=starts, ends_at=ends,
                      comment=data.get("comment") or "", created_by=created_by)
    db.session.add(silence)
    db.session.commit()
    return silence


def list_silences(include_expired: bool, now: datetime | None = None) -> list[Silence]:
    query = select(Silence).order_by(Silence.starts_at.desc())
    if not include_expired:
        query = query.where(Silence.ends_at > (now or datetime.now(UTC)))
    return list(db.session.scalars(query))


def get_silence(silence_id) -> Silence:
    try:
        silence = db.session.get(Silence, uuid.UUID(str(silence_id)))
    except ValueError:
        silence = None
    if silence is None:
        raise ApiError(404, "ERR_SILENCE_NOT_FOUND", "No such silence")
    return silence


def delete_silence(silence_id) -> None:
    silence = get_silence(silence_id)
    db.session.execute(delete(Silence).where(Silence.id == silence.id))
    db.session.commit()
