"""Celery settings (lowercase), read by worker/__init__.py. Stdlib + celery only."""

import os

from celery.schedules import crontab

broker_url = os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL") or "memory://"
result_backend = None
task_ignore_result = True

# At-least-once: a task is acknowledged after it ran, and re-queued if its worker dies.
# Only idempotent tasks live here (flush dedupes on a unique key, aggregates upsert).
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
# Longer than the largest retry delay (retry_backoff_max in worker/tasks.py), so a task
# waiting out its countdown is not redelivered to a second worker meanwhile.
RETRY_BACKOFF_MAX_SECONDS = 300
broker_transport_options = {"visibility_timeout": 3600}
broker_connection_retry_on_startup = True
worker_hijack_root_logger = False
timezone = "UTC"
enable_utc = True

beat_schedule = {
    "flush-metrics": {
        "task": "worker.tasks.flush_metrics",
        "schedule": 10.0,
        "options": {"expires": 10},
    },
    "aggregate-minute": {
        "task": "worker.tasks.aggregate_minute",
        "schedule": crontab(minute="*"),
        "options": {"expires": 60},
    },
    "evaluate-alerts": {
        "task": "worker.tasks.evaluate_alerts",
        "schedule": crontab(minute="*"),
        "options": {"expires": 60},
    },
    "sweep-notifications": {
        "task": "worker.tasks.sweep_notifications",
        "schedule": 15.0,
        "options": {"expires": 15},
    },
    "prune-metrics": {
        "task": "worker.tasks.prune_metrics",
        "schedule": crontab(minute=7),
        "options": {"expires": 3600},
    },
    "maintain-partitions": {
        "task": "worker.tasks.maintain_partitions",
        "schedule": crontab(minute=17),
        "options": {"expires": 3600},
    },
    # SDK instances silent for PULSE_DRIFT_FORGET_HOURS are forgotten.
    "forget-drift-instances": {
        "task": "worker.tasks.forget_drift_instances",
        "schedule": crontab(minute=27),
        "options": {"expires": 3600},
    },
}
