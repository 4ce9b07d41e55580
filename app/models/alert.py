"""Alerting (SPEC §11): rules, alerts, their events, channels, the outbox and silences.

An alert is one (rule, subject) while it is open (pending or firing); a partial unique
index keeps it one, so two evaluators racing to open it cannot both succeed. Every
transition is an event; an event that notifies has one outbox row per channel, written in
the transaction of the transition, which a delivery claims by compare-and-set.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import BigIntPk, JsonType, Timestamp, UuidType, new_uuid, utcnow

METRICS = ("latency_ms", "latency_p95_ms", "packet_loss_rate", "jitter_ms", "node_offline",
           "drift")
PROBE_METRICS = ("latency_ms", "latency_p95_ms", "packet_loss_rate", "jitter_ms")
BASELINE_METRICS = ("latency_ms", "latency_p95_ms", "jitter_ms")
OPS = (">", ">=", "<", "<=")
SEVERITIES = ("warning", "critical")
CHANNEL_KINDS = ("apprise", "webhook")
# An alert's states; "ok" closes a pending alert whose condition cleared before it fired.
OPEN_STATES = ("pending", "firing")
ALERT_STATES = ("pending", "firing", "resolved", "ok")
OUTBOX_STATES = ("queued", "sending", "sent", "failed")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class AlertRule(db.Model):
    __tablename__ = "alert_rules"
    __table_args__ = (
        CheckConstraint(_in("metric", METRICS), name="metric"),
        CheckConstraint(_in("severity", SEVERITIES), name="severity"),
        CheckConstraint("mode IN ('static', 'baseline')", name="mode"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UuidType, primary_key=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    metric: Mapped[str] = mapped_column(String(32), nullable=False)
    op: Mapped[str | None] = mapped_column(String(2), nullable=True)
    threshold: Mapped[float | None] = mapped_column(Double, nullable=True)
    recovery_threshold: Mapped[float | None] = mapped_column(Double, nullable=True)
    for_minutes: Mapped[int] = mapped_column(Integer, nullable=False, default=3)
    mode: Mapped[str] = mapped_column(String(16), nullable=False, default="static")
    node_id: Mapped[uuid.UUID | None] = mapped_column(
        UuidType, ForeignKey("nodes.id", ondelete="CASCADE"), nullable=True)
    probe_id: Mapped[uuid.UUID | None] = mapped_column(
        UuidType, ForeignKey("probes.id", ondelete="CASCADE"), nullable=True)
    severity: Mapped[str] = mapped_column(String(16), nullable=False, default="warning")
    channel_ids: Mapped[list] = mapped_column(JsonType, nullable=False, default=list)
    repeat_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True,
                                          server_default=true())
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False, default=utcnow,
                                                 onupdate=utcnow)


class Alert(db.Model):
    __tablename__ = "alerts"
    __table_args__ = (
        CheckConstraint(_in("state", ALERT_STATES), name="state"),
        # One open alert per (rule, subject): the loser of a race to open it gets an
        # IntegrityError and leaves it to the winner.
        Index("uq_alerts_open_subject", "rule_id", "subject_key", unique=True,
              postgresql_where=text("state IN ('pending', 'firing')"),
              sqlite_where=text("state IN ('pending', 'firing')")),
        Index("idx_alerts_state", "state"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UuidType, primary_key=True, default=new_uuid)
    rule_id: Mapped[uuid.UUID] = mapped_column(
        UuidType, ForeignKey("alert_rules.id", ondelete="CASCADE"), nullable=False)
    # "probe:<id>", "node:<id>" or "drift:<app>/<profile>/<instance_id>"
    subject_key: Mapped[str] = mapped_column(String(700), nullable=False)
    node_id: Mapped[uuid.UUID | None] = mapped_column(
        UuidType, ForeignKey("nodes.id", ondelete="CASCADE"), nullable=True)
    probe_id: Mapped[uuid.UUID | None] = mapped_column(
        UuidType, ForeignKey("probes.id", ondelete="CASCADE"), nullable=True)
    subject: Mapped[dict] = mapped_column(JsonType, nullable=False, default=dict)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    value: Mapped[float | None] = mapped_column(Double, nullable=True)
    threshold: Mapped[float | None] = mapped_column(Double, nullable=True)
    started_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    fired_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    last_notified_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    # Whether its firing was announced (a silenced firing's resolution is silent too).
    notified: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False,
                                           server_default=false())
    # Since when the condition has been clear (drift: resolved after 2 minutes of it).
    clear_since: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False, default=utcnow,
                                                 onupdate=utcnow)


class AlertEvent(db.Model):
    __tablename__ = "alert_events"
    __table_args__ = (Index("idx_alert_events_at", "at"),)

    id: Mapped[int] = mapped_column(BigIntPk, primary_key=True, autoincrement=True)
    alert_id: Mapped[uuid.UUID] = mapped_column(
        UuidType, ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False)
    rule_id: Mapped[uuid.UUID] = mapped_column(UuidType, nullable=False)
    at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    from_state: Mapped[str] = mapped_column(String(16), nullable=False)
    # pending, firing, resolved, ok, or "repeat" (a re-notification while firing)
    to_state: Mapped[str] = mapped_column(String(16), nullable=False)
    value: Mapped[float | None] = mapped_column(Double, nullable=True)
    silenced: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False,
                                           server_default=false())
    reason: Mapped[str | None] = mapped_column(String(255), nullable=True)


class NotificationChannel(db.Model):
    __tablename__ = "notification_channels"
    __table_args__ = (CheckConstraint(_in("kind", CHANNEL_KINDS), name="kind"),)

    id: Mapped[uuid.UUID] = mapped_column(UuidType, primary_key=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    # Fernet token of the URL (key derived from SECRET_KEY); the URL is a secret.
    url_encrypted: Mapped[str] = mapped_column(Text, nullable=False)
    url_redacted: Mapped[str] = mapped_column(String(255), nullable=False)
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False, default=utcnow,
                                                 onupdate=utcnow)


class NotificationOutbox(db.Model):
    """One delivery of one event to one channel: queued -> sending -> sent | failed."""

    __tablename__ = "notification_outbox"
    __table_args__ = (
        CheckConstraint(_in("status", OUTBOX_STATES), name="status"),
        UniqueConstraint("event_id", "channel_id", name="uq_notification_outbox_event_channel"),
        Index("idx_notification_outbox_status", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPk, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("alert_events.id", ondelete="CASCADE"), nullable=False)
    channel_id: Mapped[uuid.UUID] = mapped_column(
        UuidType, ForeignKey("notification_channels.id", ondelete="CASCADE"), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="queued")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    claimed_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    # What went wrong, without the URL (a status code or an exception class).
    last_error: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False, default=utcnow)


class Silence(db.Model):
    __tablename__ = "silences"
    __table_args__ = (Index("idx_silences_ends_at", "ends_at"),)

    id: Mapped[uuid.UUID] = mapped_column(UuidType, primary_key=True, default=new_uuid)
    node_id: Mapped[uuid.UUID | None] = mapped_column(
        UuidType, ForeignKey("nodes.id", ondelete="CASCADE"), nullable=True)
    probe_id: Mapped[uuid.UUID | None] = mapped_column(
        UuidType, ForeignKey("probes.id", ondelete="CASCADE"), nullable=True)
    rule_id: Mapped[uuid.UUID | None] = mapped_column(
        UuidType, ForeignKey("alert_rules.id", ondelete="CASCADE"), nullable=True)
    starts_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    ends_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    comment: Mapped[str] = mapped_column(String(1000), nullable=False, default="")
    created_by: Mapped[uuid.UUID | None] = mapped_column(UuidType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False, default=utcnow)
