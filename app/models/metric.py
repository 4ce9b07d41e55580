"""Time-series points: raw probe runs, their minute aggregates, hourly rollups, and
those two packed a period to a row for charts.

On PostgreSQL `metrics` is partitioned (app.history.partitions; the migration builds it);
the model declares the columns, keys and indexes every partition shares."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import BigIntPk, Timestamp, UuidType, utcnow


class Metric(db.Model):
    __tablename__ = "metrics"
    __table_args__ = (
        UniqueConstraint("probe_id", "timestamp", "is_aggregated", name="uq_metrics_probe_ts_agg"),
        Index("idx_metrics_node_timestamp", "node_id", text("timestamp DESC")),
        Index("idx_metrics_probe_timestamp", "probe_id", text("timestamp DESC")),
        Index("idx_metrics_timestamp", "timestamp"),
        Index("idx_metrics_aggregated", "is_aggregated", text("timestamp DESC")),
    )

    id: Mapped[int] = mapped_column(BigIntPk, primary_key=True, autoincrement=True)
    node_id: Mapped[uuid.UUID] = mapped_column(
        UuidType, ForeignKey("nodes.id", ondelete="CASCADE"), nullable=False
    )
    probe_id: Mapped[uuid.UUID] = mapped_column(
        UuidType, ForeignKey("probes.id", ondelete="CASCADE"), nullable=False
    )
    timestamp: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    latency_ms: Mapped[Decimal | None] = mapped_column(Numeric(10, 2), nullable=True)
    # A percentage 0-100 (the seed's DECIMAL(5,4) could not hold 100).
    packet_loss_rate: Mapped[Decimal | None] = mapped_column(Numeric(7, 4), nullable=True)
    jitter_ms: Mapped[Decimal | None] = mapped_column(Numeric(10, 2), nullable=True)
    is_aggregated: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=false()
    )
    # What the run reported (raw rows); on aggregated rows min/max of the minute and the
    # mean of its runs' medians and p95s. Latency columns are null for a run that
    # received nothing.
    latency_min_ms: Mapped[Decimal | None] = mapped_column(Numeric(10, 2), nullable=True)
    latency_median_ms: Mapped[Decimal | None] = mapped_column(Numeric(10, 2), nullable=True)
    latency_p95_ms: Mapped[Decimal | None] = mapped_column(Numeric(10, 2), nullable=True)
    latency_max_ms: Mapped[Decimal | None] = mapped_column(Numeric(10, 2), nullable=True)
    sent: Mapped[int | None] = mapped_column(Integer, nullable=True)
    received: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    jitter_max_ms: Mapped[Decimal | None] = mapped_column(Numeric(10, 2), nullable=True)
    packet_loss_max: Mapped[Decimal | None] = mapped_column(Numeric(7, 4), nullable=True)
    sample_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False, default=utcnow)


class MetricRollup(db.Model):
    """One probe's hour (SPEC §12), computed from its raw runs once the hour's minutes are
    final, recomputed when a late minute changes; kept PULSE_HOURLY_RETENTION_DAYS."""

    __tablename__ = "metric_rollups_hourly"
    __table_args__ = (
        UniqueConstraint("probe_id", "hour", name="uq_rollups_probe_hour"),
        Index("idx_rollups_node_hour", "node_id", "hour"),
        Index("idx_rollups_hour", "hour"),
    )

    id: Mapped[int] = mapped_column(BigIntPk, primary_key=True, autoincrement=True)
    node_id: Mapped[uuid.UUID] = mapped_column(
        UuidType, ForeignKey("nodes.id", ondelete="CASCADE"), nullable=False)
    probe_id: Mapped[uuid.UUID] = mapped_column(
        UuidType, ForeignKey("probes.id", ondelete="CASCADE"), nullable=False)
    hour: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    # Means over the runs that received something; loss over every run.
    latency_ms: Mapped[Decimal | None] = mapped_column(Numeric(10, 2), nullable=True)
    latency_min_ms: Mapped[Decimal | None] = mapped_column(Numeric(10, 2), nullable=True)
    latency_max_ms: Mapped[Decimal | None] = mapped_column(Numeric(10, 2), nullable=True)
    latency_median_ms: Mapped[Decimal | None] = mapped_column(Numeric(10, 2), nullable=True)
    latency_p95_ms: Mapped[Decimal | None] = mapped_column(Numeric(10, 2), nullable=True)
    packet_loss_rate: Mapped[Decimal | None] = mapped_column(Numeric(7, 4), nullable=True)
    packet_loss_max: Mapped[Decimal | None] = mapped_column(Numeric(7, 4), nullable=True)
    jitter_ms: Mapped[Decimal | None] = mapped_column(Numeric(10, 2), nullable=True)
    jitter_max_ms: Mapped[Decimal | None] = mapped_column(Numeric(10, 2), nullable=True)
    sample_count: Mapped[int] = mapped_column(Integer, nullable=False)  # runs
    latency_sample_count: Mapped[int] = mapped_column(Integer, nullable=False)  # that received
    runs_available: Mapped[int] = mapped_column(Integer, nullable=False)  # loss < 100
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False, default=utcnow)


class MetricBlock(db.Model):
    """A period of one probe's chart points packed in one row (app.history.blocks): a
    finished hour of minute aggregates ("1m") or a day of hourly rollups ("1h"). Each
    field a bytea of big-endian float8, NaN where the point has no value (null_fields: a
    bit per such field), and the points' epoch ms (int8). Derived, written with what it
    derives from; PostgreSQL only."""

    __tablename__ = "metric_blocks"
    __table_args__ = (
        UniqueConstraint("probe_id", "resolution", "period_start",
                         name="uq_metric_blocks_probe_period"),
        CheckConstraint("resolution IN ('1m', '1h')", name="resolution"),
        Index("idx_metric_blocks_node_period", "node_id", "resolution", "period_start"),
        Index("idx_metric_blocks_period", "resolution", "period_start"),
        # ≤ 8 KB a row (a day of hours: 24 × 64 B): kept inline and uncompressed, so a
        # read is one heap fetch a row
        {"postgresql_with": {"toast_tuple_target": 8160}},
    )

    id: Mapped[int] = mapped_column(BigIntPk, primary_key=True, autoincrement=True)
    node_id: Mapped[uuid.UUID] = mapped_column(
        UuidType, ForeignKey("nodes.id", ondelete="CASCADE"), nullable=False)
    probe_id: Mapped[uuid.UUID] = mapped_column(
        UuidType, ForeignKey("probes.id", ondelete="CASCADE"), nullable=False)
    resolution: Mapped[str] = mapped_column(String(2), nullable=False)
    period_start: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    point_count: Mapped[int] = mapped_column(Integer, nullable=False)
    null_fields: Mapped[int] = mapped_column(Integer, nullable=False)
    ts_ms: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    latency_ms: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    latency_median_ms: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    latency_min_ms: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    latency_max_ms: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    latency_p95_ms: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    packet_loss_rate: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    jitter_ms: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False, default=utcnow)
