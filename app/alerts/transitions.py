"""State changes of alerts, each by compare-and-set, each in its own transaction with its
events and one outbox row per channel (SPEC §11 "exactly once").

Any number of evaluators may run at once: an alert is opened by an INSERT that the
partial unique index admits once per (rule, subject) while open, and moved by
`UPDATE … WHERE id = :id AND state = :old`. Whoever loses finds nothing changed, rolls
back and writes nothing, so each firing and each resolution has one event and one outbox
row per channel, whoever evaluated it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import Alert, AlertEvent, NotificationOutbox
from app.models.alert import OPEN_STATES

ALERTS = Alert.__table__
EVENTS = AlertEvent.__table__
OUTBOX = NotificationOutbox.__table__


@dataclass
class OpenAlert:
    """An open alert as evaluation read it (a plain row, not a session object)."""

    id: uuid.UUID
    rule_id: uuid.UUID
    subject_key: str
    state: str
    value: float | None
    started_at: datetime
    last_notified_at: datetime | None
    notified: bool
    clear_since: datetime | None


def load_open() -> dict[tuple[str, str], OpenAlert]:
    rows = db.session.execute(select(
        ALERTS.c.id, ALERTS.c.rule_id, ALERTS.c.subject_key, ALERTS.c.state, ALERTS.c.value,
        ALERTS.c.started_at, ALERTS.c.last_notified_at, ALERTS.c.notified,
        ALERTS.c.clear_since).where(ALERTS.c.state.in_(OPEN_STATES)))
    db.session.commit()  # end the read: each change below is its own transaction
    return {(str(r.rule_id), r.subject_key): OpenAlert(*r) for r in rows}


def _event(alert_id, rule_id, now, old: str, new: str, value, silenced: bool,
           reason: str | None = None) -> int:
    return db.session.execute(insert(EVENTS).returning(EVENTS.c.id).values(
        alert_id=alert_id, rule_id=rule_id, at=now, from_state=old, to_state=new, value=value,
        silenced=silenced, reason=reason)).scalar_one()


def _outbox(event_id: int, channels: Sequence[uuid.UUID]) -> list[int]:
    """Queued deliveries, due now: the wall clock, whatever time was evaluated (a
    back-dated or future `now` of a test must not delay or hurry a real delivery)."""
    if not channels:
        return []
    due = datetime.now(UTC)
    rows = [{"event_id": event_id, "channel_id": c, "status": "queued", "attempts": 0,
             "next_attempt_at": due, "created_at": due} for c in channels]
    return list(db.session.execute(insert(OUTBOX).returning(OUTBOX.c.id), rows).scalars())


def open_alert(rule, subject, state: str, value: float | None, threshold: float | None,
               now: datetime, channels: Sequence[uuid.UUID], silenced: bool) -> list[int]:
    """ok -> pending, or ok -> pending -> firing at once; the outbox ids to deliver."""
    alert_id = uuid.uuid4()
    described = subject.describe()
    firing = state == "firing"
    try:
        db.session.execute(insert(ALERTS).values(
            id=alert_id, rule_id=rule.id, subject_key=subject.key,
            node_id=_uuid(described.get("node_id")), probe_id=_uuid(described.get("probe_id")),
            subject=described, state=state, value=value, threshold=threshold,
            started_at=now, fired_at=now if firing else None,
            last_notified_at=now if firing else None, notified=firing and not silenced,
            updated_at=now))
        _event(alert_id, rule.id, now, "ok", "pending", value, silenced)
        outbox: list[int] = []
        if firing:
            event_id = _event(alert_id, rule.id, now, "pending", "firing", value, silenced)
            outbox = [] if silenced else _outbox(event_id, channels)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()  # another evaluator opened it first
        return []
    return outbox


def change(alert: OpenAlert, new: str, value: float | None, now: datetime,
           channels: Sequence[uuid.UUID], silenced: bool, reason: str | None = None) -> list[int]:
    """pending -> firing | ok, firing -> resolved; [] if another evaluator moved it first."""
    values: dict = {"state": new, "value": value, "updated_at": now}
    if new == "firing":
        values.update(fired_at=now, last_notified_at=now, notified=not silenced,
                      clear_since=None)
    else:
        values.update(resolved_at=now)
    result = db.session.execute(update(ALERTS).where(
        ALERTS.c.id == alert.id, ALERTS.c.state == alert.state).values(**values))
    if result.rowcount != 1:
        db.session.rollback()
        return []
    # A resolution is told to those who were told of the firing (not after a silence).
    quiet = silenced or (new == "resolved" and not alert.notified)
    event_id = _event(alert.id, alert.rule_id, now, alert.state, new, value, quiet, reason)
    notifies = new == "firing" or new == "resolved"
    outbox = _outbox(event_id, channels) if notifies and not quiet else []
    db.session.commit()
    alert.state = new
    return outbox


def renotify(alert: OpenAlert, value: float | None, now: datetime,
             channels: Sequence[uuid.UUID], reason: str) -> list[int]:
    """A firing alert told again (repeat_minutes, or its silence ended): compare-and-set
    on when it was last told, so one evaluator does it."""
    last = ALERTS.c.last_notified_at
    result = db.session.execute(update(ALERTS).where(
        ALERTS.c.id == alert.id, ALERTS.c.state == "firing",
        last.is_(None) if alert.last_notified_at is None else last == alert.last_notified_at,
        ALERTS.c.notified.is_(alert.notified),
    ).values(last_notified_at=now, notified=True, value=value, updated_at=now))
    if result.rowcount != 1:
        db.session.rollback()
        return []
    event_id = _event(alert.id, alert.rule_id, now, "firing", "repeat", value, False, reason)
    outbox = _outbox(event_id, channels)
    db.session.commit()
    alert.last_notified_at, alert.notified = now, True
    return outbox


def note(alert: OpenAlert, value: float | None, clear_since: datetime | None) -> None:
    """Keep an open alert's current value (and when its condition cleared) up to date;
    not a transition, so no event."""
    if value == alert.value and clear_since == alert.clear_since:
        return
    db.session.execute(update(ALERTS).where(
        ALERTS.c.id == alert.id, ALERTS.c.state == alert.state).values(
        value=value, clear_since=clear_since))
    db.session.commit()
    alert.value, alert.clear_since = value, clear_since


def _uuid(value) -> uuid.UUID | None:
    return None if value is None else uuid.UUID(str(value))
