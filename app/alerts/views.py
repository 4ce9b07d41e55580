"""Alerts and their events as the API and the dashboard show them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import func, or_, select

from app.alerts.silences import active_silences, silenced
from app.extensions import db
from app.models import Alert, AlertEvent, AlertRule, NotificationChannel, NotificationOutbox
from app.models.alert import OPEN_STATES

LIMIT = 1000
LISTED_STATES = ("pending", "firing", "resolved")


def _subject(alert_subject: dict) -> dict:
    subject = {"node_id": alert_subject.get("node_id"), "label": alert_subject.get("label")}
    for name in ("probe_id", "instance_id", "app", "profile"):
        if alert_subject.get(name) is not None:
            subject[name] = alert_subject[name]
    return subject


def list_alerts(state: str | None = None, node_id: uuid.UUID | None = None,
                probe_id: uuid.UUID | None = None) -> list[dict]:
    """Newest first; without `state`, every listed state (a pending alert that cleared
    before firing is only in the events). `silenced`: an open alert a silence covers now."""
    silences = active_silences(datetime.now(UTC))
    query = (select(Alert, AlertRule.name, AlertRule.severity)
             .join(AlertRule, AlertRule.id == Alert.rule_id)
             .order_by(Alert.started_at.desc()).limit(LIMIT))
    query = query.where(Alert.state == state) if state else query.where(
        Alert.state.in_(LISTED_STATES))
    if node_id is not None:
        query = query.where(Alert.node_id == node_id)
    if probe_id is not None:
        query = query.where(Alert.probe_id == probe_id)
    result = []
    for alert, rule_name, severity in db.session.execute(query):
        result.append({
            "id": alert.id, "rule_id": alert.rule_id, "rule_name": rule_name,
            "severity": severity, "state": alert.state, "subject": _subject(alert.subject),
            "value": alert.value, "threshold": alert.threshold,
            "started_at": alert.started_at, "fired_at": alert.fired_at,
            "resolved_at": alert.resolved_at,
            "silenced": alert.state in OPEN_STATES and silenced(
                silences, alert.rule_id, alert.subject.get("node_id"),
                alert.subject.get("probe_id")),
        })
    return result


def list_events(start: datetime | None, end: datetime | None) -> list[dict]:
    """Every transition in [start, end], newest first, with its deliveries' outcomes."""
    query = (select(AlertEvent, Alert.subject, AlertRule.name)
             .join(Alert, Alert.id == AlertEvent.alert_id)
             .join(AlertRule, AlertRule.id == AlertEvent.rule_id)
             .order_by(AlertEvent.at.desc(), AlertEvent.id.desc()).limit(LIMIT))
    if start is not None:
        query = query.where(AlertEvent.at >= start)
    if end is not None:
        query = query.where(AlertEvent.at <= end)
    rows = db.session.execute(query).all()
    deliveries: dict[int, list[dict]] = {}
    if rows:
        for outbox, channel_name in db.session.execute(
                select(NotificationOutbox, NotificationChannel.name)
                .join(NotificationChannel, NotificationChannel.id == NotificationOutbox.channel_id)
                .where(NotificationOutbox.event_id.in_([e.id for e, _, _ in rows]))):
            deliveries.setdefault(outbox.event_id, []).append({
                "channel_id": outbox.channel_id, "channel_name": channel_name,
                "status": outbox.status, "attempts": outbox.attempts,
                "sent_at": outbox.sent_at, "error": outbox.last_error})
    return [{"id": event.id, "alert_id": event.alert_id, "rule_id": event.rule_id,
             "rule_name": rule_name, "at": event.at, "from_state": event.from_state,
             "to_state": event.to_state, "value": event.value, "silenced": event.silenced,
             "reason": event.reason, "subject": _subject(subject),
             "notifications": deliveries.get(event.id, [])}
            for event, subject, rule_name in rows]


def firing_by_node() -> dict[str, int]:
    """Firing alerts per node id (the overview's marks), one query."""
    rows = db.session.execute(select(Alert.node_id, func.count()).where(
        Alert.state == "firing", Alert.node_id.is_not(None)).group_by(Alert.node_id))
    return {str(node_id): count for node_id, count in rows}


def spans(node_id: uuid.UUID, start: datetime, end: datetime) -> list[dict]:
    """The node's alerts that fired within [start, end]: when, on which probe (None: the
    node itself), by which rule — what the node page shades on its charts."""
    rows = db.session.execute(
        select(Alert.probe_id, Alert.fired_at, Alert.resolved_at, Alert.state, AlertRule.name,
               AlertRule.severity).join(AlertRule, AlertRule.id == Alert.rule_id)
        .where(Alert.node_id == node_id, Alert.fired_at.is_not(None), Alert.fired_at <= end,
               or_(Alert.resolved_at.is_(None), Alert.resolved_at >= start))
        .order_by(Alert.fired_at).limit(LIMIT))
    return [{"probe_id": str(probe_id) if probe_id else None, "from": fired,
             "to": resolved, "firing": state == "firing", "rule": name, "severity": severity}
            for probe_id, fired, resolved, state, name, severity in rows]
