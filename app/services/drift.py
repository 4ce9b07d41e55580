"""Config drift of SDK instances: who runs which config version, and what is expected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from app.errors import ApiError
from app.extensions import db
from app.models import DriftExpected, DriftInstance
from app.services import audit

# A full app/profile makes room only as silent instances are forgotten (hourly).
FULL_RETRY_AFTER_SECONDS = 3600
REPORTED_FIELDS = ("config_version", "hostname", "ip_address", "region", "kubernetes_pod",
                   "kubernetes_namespace", "health")


def expected_version(app_name: str, profile: str) -> str | None:
    row = db.session.scalar(select(DriftExpected).where(
        DriftExpected.app == app_name, DriftExpected.profile == profile))
    return row.expected_version if row else None


def is_drifted(reported: str | None, expected: str | None) -> bool:
    """No expectation set: no drift. A missing reported version counts as drift."""
    return expected is not None and reported != expected


def record_heartbeat(app_name: str, profile: str, report: dict,
                     max_instances: int | None = None) -> dict:
    """Upsert the instance; answer {registered, expected_version, drift_detected}.

    A new instance beyond `max_instances` of its app/profile is refused (429): one
    reporter minting fresh instance ids must not grow the table without bound.
    """
    now = datetime.now(UTC)
    identity = (DriftInstance.app == app_name, DriftInstance.profile == profile,
                DriftInstance.instance_id == report["instance_id"])
    instance = db.session.scalar(select(DriftInstance).where(*identity))
    registered = instance is None
    if registered and max_instances is not None:
        _check_room(app_name, profile, max_instances)
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


def _check_room(app_name: str, profile: str, max_instances: int) -> None:
    count = db.session.scalar(select(func.count()).select_from(DriftInstance).where(
        DriftInstance.app == app_name, DriftInstance.profile == profile))
    if count >= max_instances:
        raise ApiError(429, "ERR_TOO_MANY_INSTANCES",
                       f"{app_name}/{profile} has {count} SDK instances, the most kept "
                       f"(PULSE_DRIFT_MAX_INSTANCES); silent ones are forgotten",
                       {"max_instances": max_instances},
                       headers={"Retry-After": str(FULL_RETRY_AFTER_SECONDS)})


def forget_silent_instances(forget_hours: int, now: datetime | None = None) -> int:
    """Delete SDK instances silent for `forget_hours` or more; how many."""
    cutoff = (now or datetime.now(UTC)) - timedelta(hours=forget_hours)
    deleted = db.session.execute(
        delete(DriftInstance).where(DriftInstance.last_seen_at < cutoff)).rowcount
    db.session.commit()
    return deleted


def set_expected(app_name: str, profile: str, version: str) -> DriftExpected:
    row = db.session.scalar(select(DriftExpected).where(
        DriftExpected.app == app_name, DriftExpected.profile == profile))
    if row is None:
        row = DriftExpected(app=app_name, profile=profile, expected_version=version)
        db.session.add(row)
    else:
        row.expected_version = version
    audit.record("drift_expected.set", "drift_expected", f"{app_name}/{profile}",
                 {"expected_version": version})
    db.session.commit()
    return row


def get_expected(app_name: str, profile: str) -> DriftExpected:
    row = db.session.scalar(select(DriftExpected).where(
        DriftExpected.app == app_name, DriftExpected.profile == profile))
    if row is None:
        raise ApiError(404, "ERR_EXPECTATION_NOT_FOUND",
                       f"No expected version is set for {app_name}/{profile}")
    return row


def delete_expected(app_name: str, profile: str) -> None:
    """Forget the expectation: the app/profile's instances are no longer judged drifted."""
    row = get_expected(app_name, profile)
    audit.record("drift_expected.delete", "drift_expected", f"{app_name}/{profile}",
                 {"expected_version": row.expected_version})
    db.session.delete(row)
    db.session.commit()


def delete_instance(app_name: str, profile: str, instance_id: str) -> None:
    """Forget one SDK instance (a decommissioned host); it reappears if it reports again."""
    row = db.session.scalar(select(DriftInstance).where(
        DriftInstance.app == app_name, DriftInstance.profile == profile,
        DriftInstance.instance_id == instance_id))
    if row is None:
        raise ApiError(404, "ERR_INSTANCE_NOT_FOUND",
                       f"No instance {instance_id} of {app_name}/{profile}")
    audit.record("drift_instance.delete", "drift_instance",
                 f"{app_name}/{profile}/{instance_id}", {})
    db.session.delete(row)
    db.session.commit()


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
