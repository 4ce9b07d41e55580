"""The audit trail: who created, changed, deleted, rotated or revoked what, and failed
logins (SPEC §4). Written in the same transaction as the change it records."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import BigIntPk, JsonType, Timestamp, utcnow


class AuditLog(db.Model):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("idx_audit_log_at", "at"),
        Index("idx_audit_log_actor_at", "actor_id", "at"),
        Index("idx_audit_log_action_at", "action", "at"),
    )

    id: Mapped[int] = mapped_column(BigIntPk, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(Timestamp, nullable=False, default=utcnow)
    # user | api_token | node | system (CLI, worker) | anonymous (failed login)
    actor_kind: Mapped[str] = mapped_column(String(16), nullable=False)
    actor_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    actor_label: Mapped[str | None] = mapped_column(String(255), nullable=True)
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    object_type: Mapped[str] = mapped_column(String(32), nullable=False)
    object_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    details: Mapped[dict] = mapped_column(JsonType, nullable=False, default=dict)
    remote_addr: Mapped[str | None] = mapped_column(String(64), nullable=True)
