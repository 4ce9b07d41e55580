"""Delivering outbox rows: queued -> sending -> sent | failed, each step compare-and-set.

A delivery claims its row (`UPDATE … WHERE status = 'queued'`), so two tasks for one row
(a retry and a sweep, a re-delivered message) send it once. A failed attempt puts the row
back to queued with its next attempt time (the Celery task retries with that countdown);
after PULSE_NOTIFY_MAX_ATTEMPTS it is failed. The sweep re-queues rows a dead worker left
in sending, and re-dispatches queued rows whose task was lost. Only a worker killed after
the receiver's 2xx and before recording it repeats a message (same fingerprint).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import select, update

from app.alerts import notifiers
from app.alerts.channel_crypto import ChannelKeyError, decrypt_url
from app.extensions import db, get_redis
from app.models import Alert, AlertEvent, AlertRule, NotificationChannel, NotificationOutbox
from app.telemetry.alert_stats import record_notification

log = logging.getLogger(__name__)
OUTBOX = NotificationOutbox.__table__
SWEEP_LIMIT = 500
# A queued row whose due time passed this long ago has lost its task (broker restart).
LOST_TASK_GRACE = timedelta(seconds=30)


@dataclass
class Outcome:
    status: str  # sent, retry, failed, or skipped (claimed by someone else / gone)
    retry_in_seconds: float = 0.0
    error: str | None = None


def backoff_seconds(attempts: int) -> float:
    base = current_app.config["PULSE_NOTIFY_BACKOFF_SECONDS"]
    return float(min(base * 2 ** max(attempts - 1, 0), 300))


def _claim(outbox_id: int, now: datetime) -> datetime | None:
    result = db.session.execute(update(OUTBOX).where(
        OUTBOX.c.id == outbox_id, OUTBOX.c.status == "queued",
        OUTBOX.c.next_attempt_at <= now + timedelta(seconds=1),
    ).values(status="sending", claimed_at=now, attempts=OUTBOX.c.attempts + 1))
    db.session.commit()
    return now if result.rowcount == 1 else None


def _finish(outbox_id: int, claimed_at: datetime, **values) -> bool:
    """Record the outcome, unless the sweep took the row back meanwhile."""
    result = db.session.execute(update(OUTBOX).where(
        OUTBOX.c.id == outbox_id, OUTBOX.c.status == "sending",
        OUTBOX.c.claimed_at == claimed_at).values(**values))
    db.session.commit()
    return result.rowcount == 1


def message_for(event: AlertEvent, alert: Alert, rule: AlertRule,
                channel: NotificationChannel) -> notifiers.Message:
    resolved = event.to_state in ("resolved", "ok")
    return notifiers.Message(
        status="resolved" if resolved else "firing", alert_id=str(alert.id),
        rule_name=rule.name, severity=rule.severity, subject=alert.subject or {},
        value=event.value, threshold=alert.threshold, metric=rule.metric,
        starts_at=alert.fired_at or alert.started_at,
        ends_at=(alert.resolved_at or event.at) if resolved else None,
        receiver=channel.name, external_url=current_app.config["PULSE_EXTERNAL_URL"])


def deliver(outbox_id: int, now: datetime | None = None) -> Outcome:
    """Claim one outbox row and send it; the outcome tells the task whether to retry."""
    claimed_at = _claim(outbox_id, now or datetime.now(UTC))
    if claimed_at is None:
        return Outcome("skipped")
    row = db.session.get(NotificationOutbox, outbox_id)
    event = db.session.get(AlertEvent, row.event_id)
    alert = db.session.get(Alert, event.alert_id)
    rule = db.session.get(AlertRule, alert.rule_id)
    channel = db.session.get(NotificationChannel, row.channel_id)
    kind = channel.kind
    try:
        url = decrypt_url(channel.url_encrypted)
        notifiers.send(kind, url, message_for(event, alert, rule, channel))
    except (notifiers.DeliveryFailed, ChannelKeyError) as exc:
        return _failed(row, kind, claimed_at, str(exc))
    except Exception as exc:  # a notifier bug must not leave the row in sending
        log.error("delivery %s: unexpected %s", outbox_id, type(exc).__name__)
        return _failed(row, kind, claimed_at, type(exc).__name__)
    _finish(row.id, claimed_at, status="sent", sent_at=datetime.now(UTC), last_error=None)
    _count(kind, "sent")
    return Outcome("sent")


def _failed(row: NotificationOutbox, kind: str, claimed_at: datetime, error: str) -> Outcome:
    attempts = row.attempts
    error = error[:255]
    if attempts >= current_app.config["PULSE_NOTIFY_MAX_ATTEMPTS"]:
        _finish(row.id, claimed_at, status="failed", last_error=error)
        _count(kind, "failed")
        log.warning("delivery %s to channel %s failed for good after %d attempts: %s",
                    row.id, row.channel_id, attempts, error)
        return Outcome("failed", error=error)
    delay = backoff_seconds(attempts)
    _finish(row.id, claimed_at, status="queued", last_error=error,
            next_attempt_at=datetime.now(UTC) + timedelta(seconds=delay))
    _count(kind, "retry")
    log.info("delivery %s to channel %s: attempt %d failed (%s), again in %.0f s",
             row.id, row.channel_id, attempts, error, delay)
    return Outcome("retry", retry_in_seconds=delay, error=error)


def _count(kind: str, outcome: str) -> None:
    try:
        handle = get_redis()
        record_notification(handle.client, handle.prefix, kind, outcome)
    except Exception:  # telemetry must not fail a delivery
        log.warning("could not count a notification outcome", exc_info=True)


def sweep(now: datetime | None = None) -> list[int]:
    """Re-queue rows a dead worker left in sending; return every row to dispatch again
    (those, and queued rows whose task was lost)."""
    now = now or datetime.now(UTC)
    stale = now - timedelta(seconds=current_app.config["PULSE_NOTIFY_CLAIM_SECONDS"])
    requeued = list(db.session.execute(update(OUTBOX).where(
        OUTBOX.c.status == "sending", OUTBOX.c.claimed_at < stale,
    ).values(status="queued", next_attempt_at=now).returning(OUTBOX.c.id)).scalars())
    db.session.commit()
    if requeued:
        log.warning("re-queued %d deliveries left in sending by a dead worker", len(requeued))
    grace = timedelta(0) if current_app.extensions.get("pulse_scheduler") else LOST_TASK_GRACE
    lost = list(db.session.scalars(select(OUTBOX.c.id).where(
        OUTBOX.c.status == "queued", OUTBOX.c.next_attempt_at <= now - grace,
    ).order_by(OUTBOX.c.next_attempt_at).limit(SWEEP_LIMIT)))
    db.session.commit()
    return sorted(set(requeued) | set(lost))


def test_channel(channel: NotificationChannel) -> Outcome:
    """Send a test message to a channel now (POST …/test); nothing is recorded."""
    message = notifiers.Message(
        status="firing", alert_id=f"test-{uuid.uuid4()}", rule_name="Pulse test message",
        severity="warning", subject={"label": "test"}, value=None, threshold=None,
        metric="test", starts_at=datetime.now(UTC), ends_at=None, receiver=channel.name,
        external_url=current_app.config["PULSE_EXTERNAL_URL"], test=True)
    try:
        notifiers.send(channel.kind, decrypt_url(channel.url_encrypted), message)
    except (notifiers.DeliveryFailed, ChannelKeyError) as exc:
        _count(channel.kind, "test_failed")
        return Outcome("failed", error=str(exc))
    _count(channel.kind, "test_sent")
    return Outcome("sent")
