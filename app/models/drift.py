"""Config drift: what SDK instances report and what each app/profile is expected to run."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import JsonType, Timestamp, utcnow


class DriftInstance(db.Model):
    __tablename__ = "drift_instances"
    __table_args__ = (
        UniqueConstraint("app", "profile", "instance_id", name="uq_drift_instances_identity"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    app: Mapped[str] = mapped_column(String(128), nullable=False)
    profile: Mapped[str] = mapped_column(String(128), nullable=False)
    instance_id: Mapped[str] = mapped_column(String(255), nullable=False)
    config_version: Mapped[str | None] = mapped_column(String(128), nullable=True)
    hostname: Mapped[str | None] = mapped_column(String(255), nullable=True)
    ip_address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    region: Mapped[str | None] = mapped_column(String(64), nullable=True)
    kubernetes_pod: Mapped[str | None] = mapped_column(String(255), nullable=True)
    kubernetes_namespace: Mapped[str | None] = mapped_column(String(255), nullable=True)
    metadata_: Mapped[dict] = mapped_column("metadata", JsonType, nullable=False, default=dict)
    health: Mapped[str | None] = mapped_column(String(32), nullable=True)
    first_seen_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False, default=utcnow)


class DriftExpected(db.Model):
    __tablename__ = "drift_expected"
    __table_args__ = (UniqueConstraint("app", "profile", name="uq_drift_expected_identity"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    app: Mapped[str] = mapped_column(String(128), nullable=False)
    profile: Mapped[str] = mapped_column(String(128), nullable=False)
    expected_version: Mapped[str] = mapped_column(String(128), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        Timestamp, nullable=False, default=utcnow, onupdate=utcnow
    )
