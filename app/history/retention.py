"""Retention: raw rows older than PULSE_RAW_RETENTION_DAYS, aggregates older than
PULSE_AGG_RETENTION_DAYS. Deleted in bounded batches so no transaction grows large."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import delete, select

from app.extensions import db
from app.models import Metric

BATCH = 5000
MAX_BATCHES = 200


def _prune(is_aggregated: bool, older_than: datetime) -> int:
    removed = 0
    for _ in range(MAX_BATCHES):
        ids = select(Metric.id).where(
            Metric.is_aggregated.is_(is_aggregated), Metric.timestamp < older_than
        ).limit(BATCH)
        result = db.session.execute(delete(Metric).where(Metric.id.in_(ids)))
        db.session.commit()
        removed += result.rowcount
        if result.rowcount < BATCH:
            break
    return removed


def prune(now: datetime | None = None) -> dict[str, int]:
    now = now or datetime.now(UTC)
    raw_days = current_app.config["PULSE_RAW_RETENTION_DAYS"]
    agg_days = current_app.config["PULSE_AGG_RETENTION_DAYS"]
    return {
        "raw": _prune(False, now - timedelta(days=raw_days)),
        "aggregated": _prune(True, now - timedelta(days=agg_days)),
    }
