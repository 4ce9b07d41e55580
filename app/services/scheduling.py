"""Running the periodic work: early flushes, and the embedded scheduler of `make run`.

With a broker, Celery beat runs flush/aggregate/prune (celeryconfig.beat_schedule) and an
early flush is a task sent to the broker. Without REDIS_URL there is no broker: a daemon
thread in the API process runs the same service functions the Celery tasks wrap, on the
same schedule, and an early flush wakes it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from flask import Flask, current_app

from app.extensions import get_redis
from app.services.keys import flush_queued_key

log = logging.getLogger(__name__)
EARLY_FLUSH_FLAG_SECONDS = 60


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
        _celery_client(current_app).send_task("worker.tasks.flush_metrics", expires=30)
    except Exception:  # the broker is Redis too; the periodic flush still runs
        log.exception("could not queue an early flush")


def clear_early_flush_flag() -> None:
    handle = get_redis()
    handle.client.delete(flush_queued_key(handle.prefix))


def _celery_client(app: Flask):
    client = app.extensions.get("pulse_celery_client")
    if client is None:
        from celery import Celery

        client = Celery("pulse-api", broker=app.config["CELERY_BROKER_URL"])
        client.config_from_object("celeryconfig")
        client.conf.broker_url = app.config["CELERY_BROKER_URL"]
        app.extensions["pulse_celery_client"] = client
    return client


class EmbeddedScheduler:
    """A named daemon thread running periodic jobs inside the app (no broker)."""

    def __init__(self, app: Flask, jobs: dict[str, tuple[float, Callable[[], object]]]) -> None:
        self.app = app
        self.jobs = jobs
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pulse-embedded-scheduler",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def wake_flush(self) -> None:
        self._wake.set()

    def _run_job(self, name: str, func: Callable[[], object]) -> None:
        with self.app.app_context():
            try:
                func()
            except Exception:
                log.exception("embedded job %s failed; it runs again on schedule", name)

    def _run(self) -> None:
        next_run = {name: time.monotonic() + 2 for name in self.jobs}
        while not self._stop.is_set():
            now = time.monotonic()
            for name, (period, func) in self.jobs.items():
                if now >= next_run[name]:
                    self._run_job(name, func)
                    next_run[name] = time.monotonic() + period
            timeout = max(0.05, min(next_run.values()) - time.monotonic())
            if self._wake.wait(timeout):
                self._wake.clear()
                if not self._stop.is_set() and "flush_metrics" in self.jobs:
                    self._run_job("flush_metrics", self.jobs["flush_metrics"][1])


def init_embedded_scheduler(app: Flask) -> None:
    """Start the scheduler with the first request, in embedded mode only."""
    if app.config.get("REDIS_URL") or app.config.get("TESTING") \
            or not app.config.get("PULSE_EMBEDDED_SCHEDULER"):
        return
    lock = threading.Lock()

    def ensure_scheduler() -> None:
        if "pulse_scheduler" in app.extensions:
            return
        with lock:
            if "pulse_scheduler" not in app.extensions:
                scheduler = EmbeddedScheduler(app, periodic_jobs())
                app.extensions["pulse_scheduler"] = scheduler
                scheduler.start()
                log.warning("embedded mode: flush/aggregate/prune run in-process")

    app.before_request(ensure_scheduler)
    # Requests served outside Flask's dispatch (the heartbeat fast path) call it too.
    app.extensions["pulse_ensure_scheduler"] = ensure_scheduler


def periodic_jobs() -> dict[str, tuple[float, Callable[[], object]]]:
    from app.services.aggregation import aggregate_pending_minutes
    from app.services.flush import flush_pending
    from app.services.retention import prune

    return {
        "flush_metrics": (10.0, flush_pending),
        "aggregate_minute": (60.0, aggregate_pending_minutes),
        "prune_metrics": (3600.0, prune),
    }
