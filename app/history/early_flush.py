"""The early flush: ingest asks for one when >= 100 points are pending (SPEC §6), with at
most one queued at a time (a flag in Redis, cleared when a flush run starts).

With a broker it is a Celery task sent to the broker; in embedded mode (no REDIS_URL) it
wakes the in-process scheduler (worker.embedded), which registers itself in
`app.extensions["pulse_scheduler"]`.
"""

from __future__ import annotations

import logging

from flask import Flask, current_app

from app.extensions import get_redis
from app.redis_keys import flush_queued_key

log = logging.getLogger(__name__)
EARLY_FLUSH_FLAG_SECONDS = 60
FLUSH_TASK = "worker.tasks.flush_metrics"


def request_early_flush() -> None:
    """Queue one flush now, with at most one such flush queued at a time."""
    handle = get_redis()
    if not handle.client.set(flush_queued_key(handle.prefix), 1, nx=True,
                             ex=EARLY_FLUSH_FLAG_SECONDS):
        return
    scheduler = current_app.extensions.get("pulse_scheduler")
    if scheduler is not None:
        scheduler.wake_flush()
        return
    broker = current_app.config.get("CELERY_BROKER_URL")
    if not broker:
        return  # tests without a broker: the periodic flush will take it
    try:
        _celery_client(current_app).send_task(FLUSH_TASK, expires=30)
    except Exception:  # the broker is Redis too; the periodic flush still runs
        log.exception("could not queue an early flush")


def clear_early_flush_flag() -> None:
    handle = get_redis()
    handle.client.delete(flush_queued_key(handle.prefix))


def _celery_client(app: Flask):
    """A send-only Celery client (the API process runs no tasks)."""
    client = app.extensions.get("pulse_celery_client")
    if client is None:
        from celery import Celery

        client = Celery("pulse-api", broker=app.config["CELERY_BROKER_URL"])
        client.config_from_object("celeryconfig")
        client.conf.broker_url = app.config["CELERY_BROKER_URL"]
        app.extensions["pulse_celery_client"] = client
    return client
