"""Handing committed outbox rows to whoever delivers them.

With a broker: one Celery task per row (`worker.tasks.deliver_notification`), so a
channel that hangs holds one worker slot, never the evaluation or the other channels. In
embedded mode (no broker): a small pool of named threads in the process. Without either
(unit tests) nothing is sent here; `outbox.deliver` is called directly. Whatever is not
handed over (a broker down) the periodic sweep hands over again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from flask import Flask, current_app

log = logging.getLogger(__name__)
DELIVER_TASK = "worker.tasks.deliver_notification"
EMBEDDED_THREADS = 4


def dispatch(outbox_ids: Sequence[int]) -> None:
    if not outbox_ids:
        return
    app = current_app._get_current_object()
    if app.extensions.get("pulse_scheduler") is not None:
        pool = _embedded_pool(app)
        for outbox_id in outbox_ids:
            pool.submit(_deliver_in_app, app, outbox_id)
        return
    if not app.config.get("CELERY_BROKER_URL"):
        return
    try:
        client = _celery_client(app)
        for outbox_id in outbox_ids:
            client.send_task(DELIVER_TASK, args=[outbox_id])
    except Exception:  # the sweep hands them over again
        log.exception("could not queue %d deliveries; the sweep will", len(outbox_ids))


def _embedded_pool(app: Flask) -> ThreadPoolExecutor:
    pool = app.extensions.get("pulse_alert_delivery_pool")
    if pool is None:
        pool = ThreadPoolExecutor(EMBEDDED_THREADS, thread_name_prefix="pulse-deliver")
        app.extensions["pulse_alert_delivery_pool"] = pool
    return pool


def _deliver_in_app(app: Flask, outbox_id: int) -> None:
    from app.alerts.outbox import deliver

    with app.app_context():
        try:
            deliver(outbox_id)  # a retry is taken up by the sweep when it is due
        except Exception:
            log.exception("embedded delivery %s failed; the sweep retries it", outbox_id)


def _celery_client(app: Flask):
    """A send-only Celery client (shared with the early flush: the same extension key)."""
    client = app.extensions.get("pulse_celery_client")
    if client is None:
        from celery import Celery

        client = Celery("pulse-api", broker=app.config["CELERY_BROKER_URL"])
        client.config_from_object("celeryconfig")
        client.conf.broker_url = app.config["CELERY_BROKER_URL"]
        app.extensions["pulse_celery_client"] = client
    return client
