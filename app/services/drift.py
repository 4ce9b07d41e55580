"""Config drift of SDK instances: who runs which config version, and what is expected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import DriftExpected, DriftInstance

REPORTED_FIELDS = ("config_version", "hostname", "ip_address", "region", "kubernetes_pod",
                   "kubernetes_namespace", "health")


def expected_version(app_name: str, profile: str) -> str | None:
    row = db.session.scalar(select(DriftExpected).where(
        DriftExpected.app == app_name, DriftExpected.profile == profile))
    return row.expected_version if row else None


def is_drifted(reported: str | None, expected: str | None) -> bool:
    """No expectation set: no drift. A missing reported version counts as drift."""
    return expected is not None and reported != expected


def record_heartbeat(app_name: str, profile: str, report: dict) -> dict:
    """Upsert the instance; answer {registered, expected_version, drift_detected}."""
    now = datetime.now(UTC)
    identity = (DriftInstance.app == app_name, DriftInstance.profile == profile,
                DriftInstance.instance_id == report["instance_id"])
    instance = db.session.scalar(select(DriftInstance).where(*identity))
    registered = instance is None
    if registered:
        instance = DriftInstance(app=app_name, profile=profile,
                                 instance_id=report["instance_id"], first_seen_at=now)
        db.session.add(instance)
    for name in REPORTED_FIELDS:
        if name in report:
            setattr(instance, name, report[name])
    if "metadata" in report:
        instance.metadata_ = report["metadata"] or {}
    instance.last_seen_at = now
    try:
        db.session.commit()
    except IntegrityError:
        # Two first heartbeats of one instance at once: the other one registered it.
        db.session.rollback()
        return record_heartbeat(app_name, profile, report) | {"registered": False}
    expected = expected_version(app_name, profile)
    return {"registered": registered, "expected_version": expected,
            "drift_detected": is_drifted(instance.config_version, expected)}


def set_expected(app_name: str, profile: str, version: str) -> DriftExpected:
    row = db.session.scalar(select(DriftExpected).where(
        DriftExpected.app == app_name, DriftExpected.profile == profile))
    if row is None:
        row = DriftExpected(app=app_name, profile=profile, expected_version=version)
        db.session.add(row)
    else:
        row.expected_version = version
    db.session.commit()
    return row


def list_instances(app_name: str | None, profile: str | None, stale_seconds: int) -> list[dict]:
    query = select(DriftInstance).order_by(DriftInstance.app, DriftInstance.profile,
                                           DriftInstance.instance_id)
    if app_name:
        query = query.where(DriftInstance.app == app_name)
    if profile:
        query = query.where(DriftInstance.profile == profile)
    expectations = {(e.app, e.profile): e.expected_version
                    for e in db.session.scalars(select(DriftExpected))}
    cutoff = datetime.now(UTC) - timedelta(seconds=stale_seconds)
    result = []
    for row in db.session.scalars(query):
        last_seen = row.last_seen_at if row.last_seen_at.tzinfo else row.last_seen_at.replace(
            tzinfo=UTC)
        expected = expectations.get((row.app, row.profile))
        view = {c.key: getattr(row, c.key) for c in DriftInstance.__mapper__.column_attrs}
        view.update(expected_version=expected, stale=last_seen < cutoff,
                    drift_detected=is_drifted(row.config_version, expected))
        result.append(view)
    return result
