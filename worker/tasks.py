"""Thin Celery tasks, named explicitly, each calling one service.

Connection errors are retried with exponential backoff and jitter, capped below the
broker visibility timeout. Correctness never depends on a retry being delivered: what a
failed run did not write stays pending in Redis and the next scheduled run takes it.
"""

from __future__ import annotations

from datetime import datetime

import psycopg2
import redis
import sqlalchemy.exc
from celery import shared_task
from celery.signals import task_retry

from celeryconfig import RETRY_BACKOFF_MAX_SECONDS

CONNECTION_ERRORS = (
    redis.ConnectionError, redis.TimeoutError, sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError, psycopg2.OperationalError, psycopg2.InterfaceError,
)
RETRY = {
    "autoretry_for": CONNECTION_ERRORS,
    "retry_backoff": 2,
    "retry_backoff_max": RETRY_BACKOFF_MAX_SECONDS,
    "retry_jitter": True,
    "max_retries": 8,
}


@shared_task(name="worker.tasks.flush_metrics", **RETRY)
def flush_metrics() -> dict:
    from app.history.flush import flush_pending

    report = flush_pending()
    return {"entries": report.entries, "rows": report.rows, "inserted": report.inserted}


@shared_task(name="worker.tasks.aggregate_minute", **RETRY)
def aggregate_minute() -> int:
    from app.history.aggregation import aggregate_pending_minutes

    return aggregate_pending_minutes()


@shared_task(name="worker.tasks.prune_metrics", **RETRY)
def prune_metrics() -> dict:
    from app.history.retention import prune

    return prune()


@shared_task(name="worker.tasks.maintain_partitions", **RETRY)
def maintain_partitions() -> dict:
    from app.history.retention import maintain_partitions as maintain

    return maintain()


@shared_task(name="worker.tasks.evaluate_alerts", **RETRY)
def evaluate_alerts(now=None) -> dict:
    """Judge every alert rule; `now` (a datetime or ISO 8601 string) for back-dated tests."""
    from app.alerts.evaluation import evaluate

    report = evaluate(_when(now))
    return {"rules": report.rules, "subjects": report.subjects,
            "transitions": report.transitions, "deliveries": len(report.outbox)}


@shared_task(name="worker.tasks.deliver_notification", bind=True, max_retries=None,
             **{k: v for k, v in RETRY.items() if k != "max_retries"})
def deliver_notification(self, outbox_id: int) -> str:
    """Send one outbox row; a failed attempt retries with the row's backoff (the attempt
    count lives in the row, so PULSE_NOTIFY_MAX_ATTEMPTS bounds it, not Celery)."""
    from app.alerts.notifiers import DeliveryFailed
    from app.alerts.outbox import deliver

    outcome = deliver(outbox_id)
    if outcome.status == "retry":
        raise self.retry(countdown=outcome.retry_in_seconds,
                         exc=DeliveryFailed(outcome.error or "not delivered"))
    return outcome.status


@shared_task(name="worker.tasks.sweep_notifications", **RETRY)
def sweep_notifications() -> int:
    """Hand over again the deliveries a dead worker or a lost message left behind."""
    from app.alerts.dispatch import dispatch
    from app.alerts.outbox import sweep

    ids = sweep()
    dispatch(ids)
    return len(ids)


def _when(now):
    if now is None or isinstance(now, datetime):
        return now
    return datetime.fromisoformat(str(now).replace("Z", "+00:00"))


@shared_task(name="worker.tasks.forget_drift_instances", **RETRY)
def forget_drift_instances() -> int:
    from flask import current_app

    from app.services.drift import forget_silent_instances

    return forget_silent_instances(current_app.config["PULSE_DRIFT_FORGET_HOURS"])


@task_retry.connect
def _count_retry(sender=None, **kwargs) -> None:
    try:
        from app.extensions import get_redis
        from app.telemetry.stats import record_stats

        handle = get_redis()
        record_stats(handle.client, handle.prefix, {"task_retries": 1})
    except Exception:  # Redis itself may be what failed
        pass
