"""Steps of the alerting integration tests: a broker of the test's own, a node with
probes, evaluation tasks sent to real workers and waited for."""

from __future__ import annotations

import random
from datetime import datetime

import redis

from tests.integration.conftest import wait_until
from tests.support.alerting import iso


def own_broker(server_env: dict) -> dict:
    """The test's environment with a broker database of its own (emptied), so no task
    left by another test reaches this test's workers."""
    base = server_env["REDIS_URL"].rsplit("/", 1)[0]
    url = f"{base}/{random.randint(1, 15)}"
    redis.Redis.from_url(url).flushdb()
    return {**server_env, "CELERY_BROKER_URL": url, "PULSE_NOTIFY_BACKOFF_SECONDS": "1"}


def send_evaluation(env: dict, now: datetime, copies: int = 1) -> None:
    from celery import Celery

    client = Celery("it-client", broker=env["CELERY_BROKER_URL"])
    try:
        for _ in range(copies):
            client.send_task("worker.tasks.evaluate_alerts", kwargs={"now": iso(now)})
    finally:
        client.close()


def finished(workers, task: str = "worker.tasks.evaluate_alerts") -> int:
    """How many runs of `task` the workers logged as done."""
    return sum(_succeeded(w.log(), task) for w in workers)


def _succeeded(log: str, task: str) -> int:
    return sum(1 for line in log.splitlines() if f"Task {task}[" in line and "succeeded" in line)


def wait_finished(workers, count: int, timeout: float = 30.0) -> None:
    wait_until(lambda: finished(workers) >= count, timeout,
               message=f"{count} evaluations done by the workers")
