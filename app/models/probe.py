"""Probe configuration (seed 004's probes table, plus name, enabled and source)."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import Timestamp, UuidType, new_uuid, utcnow

PROBE_TYPES = ("TCP", "UDP")
PORT_RANGE = (1, 65535)
INTERVAL_RANGE = (60, 300)
COUNT_RANGE = (1, 100)
TIMEOUT_RANGE = (1, 30)
# What a Beacon runs of a probe (beacon config, declared probes, config version).
PROBE_SETTINGS = ("type", "target", "port", "interval_seconds", "count", "timeout_seconds")


class Probe(db.Model):
    __tablename__ = "probes"
    __table_args__ = (
        CheckConstraint("type IN ('TCP', 'UDP')", name="type"),
        CheckConstraint("port >= 1 AND port <= 65535", name="port"),
        CheckConstraint("interval_seconds >= 60 AND interval_seconds <= 300", name="interval"),
        CheckConstraint("count >= 1 AND count <= 100", name="count"),
        CheckConstraint("timeout_seconds >= 1 AND timeout_seconds <= 30", name="timeout"),
        CheckConstraint("source IN ('api', 'beacon')", name="source"),
        UniqueConstraint("node_id", "type", "target", "port",
                         name="uq_probes_node_type_target_port"),
        Index("idx_probes_node_id", "node_id"),
        Index("idx_probes_type", "type"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UuidType, primary_key=True, default=new_uuid)
    node_id: Mapped[uuid.UUID] = mapped_column(
        UuidType, ForeignKey("nodes.id", ondelete="CASCADE"), nullable=False
    )
    name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    type: Mapped[str] = mapped_column(String(8), nullable=False)
    target: Mapped[str] = mapped_column(String(255), nullable=False)
    port: Mapped[int] = mapped_column(Integer, nullable=False)
    interval_seconds: Mapped[int] = mapped_column(Integer, nullable=False, default=60)
    count: Mapped[int] = mapped_column(Integer, nullable=False, default=10)
    timeout_seconds: Mapped[int] = mapped_column(Integer, nullable=False, default=5)
    enabled: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=True, server_default=true()
    )
    source: Mapped[str] = mapped_column(String(8), nullable=False, default="api")
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        Timestamp, nullable=False, default=utcnow, onupdate=utcnow
    )

    @property
    def label(self) -> str:
        """What a viewer may see of the probe: its name, or `<TYPE> #<first 8 of id>`."""
        return self.name or f"{self.type} #{str(self.id)[:8]}"


def config_version_of(probes: Iterable[Probe]) -> str:
    """An opaque version of a node's enabled probe set: any change to the set changes it."""
    canonical = sorted(
        [str(p.id), *(getattr(p, k) for k in PROBE_SETTINGS)] for p in probes if p.enabled
    )
    digest = hashlib.sha256(json.dumps(canonical, separators=(",", ":")).encode()).hexdigest()
    return "cv-" + digest[:16]
