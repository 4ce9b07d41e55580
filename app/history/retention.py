"""Retention (SPEC §12): raw rows PULSE_RAW_RETENTION_DAYS, minute aggregates
PULSE_AGG_RETENTION_DAYS, hourly rollups PULSE_HOURLY_RETENTION_DAYS.

On PostgreSQL whole partitions past retention are dropped (app.history.partitions) and only
the defaults' expired rows are deleted; on SQLite rows are deleted in bounded batches so no
transaction grows large. Rollups are one table, deleted by hour in batches; so are the
packed blocks (app.history.blocks): an hour of minutes kept as long as the raw runs it can
be re-rolled from, a day of rollups until its first hour expires.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import delete, select

from app.extensions import db
from app.history import partitions
from app.models import Metric, MetricBlock, MetricRollup

BATCH = 5000
MAX_BATCHES = 200


def _delete_in_batches(model, *conditions) -> int:
    removed = 0
    for _ in range(MAX_BATCHES):
        ids = select(model.id).where(*conditions).limit(BATCH)
        result = db.session.execute(delete(model).where(model.id.in_(ids)))
        db.session.commit()
        removed += result.rowcount
        if result.rowcount < BATCH:
            break
    return removed


def _retention_days() -> tuple[int, int, int]:
    config = current_app.config
    return (config["PULSE_RAW_RETENTION_DAYS"], config["PULSE_AGG_RETENTION_DAYS"],
            config["PULSE_HOURLY_RETENTION_DAYS"])


def prune(now: datetime | None = None) -> dict[str, int]:
    """Drop or delete everything past retention."""
    now = now or datetime.now(UTC)
    raw_days, agg_days, hourly_days = _retention_days()
    if partitions.is_partitioned():
        result = partitions.drop_expired(now, raw_days, agg_days)
    else:
        result = {
            "raw": _delete_in_batches(Metric, Metric.is_aggregated.is_(False),
                                      Metric.timestamp < now - timedelta(days=raw_days)),
            "aggregated": _delete_in_batches(Metric, Metric.is_aggregated.is_(True),
                                             Metric.timestamp < now - timedelta(days=agg_days)),
        }
    result["rollups"] = _delete_in_batches(MetricRollup,
                                           MetricRollup.hour < now - timedelta(days=hourly_days))
    result["blocks"] = sum(_delete_in_batches(
        MetricBlock, MetricBlock.resolution == resolution,
        MetricBlock.period_start < now - timedelta(days=days))
        for resolution, days in (("1m", raw_days), ("1h", hourly_days)))
    return result


def maintain_partitions(now: datetime | None = None) -> dict[str, int]:
    """Create the partitions ahead (and those retention still keeps); see partitions."""
    raw_days, agg_days, _ = _retention_days()
    return partitions.maintain(now, raw_days, agg_days)
