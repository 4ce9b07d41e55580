"""Telemetry: Prometheus metrics for GET /metrics.

Per-process metrics (requests, heartbeats; `metrics`) use prometheus_client, in
multiprocess mode when PROMETHEUS_MULTIPROC_DIR is set (several gunicorn workers; see
gunicorn.conf.py). Figures the Celery workers produce and the pending length are kept in
Redis and read at scrape time (`stats`).
"""

from __future__ import annotations

import time

from flask import Flask, g, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.telemetry.metrics import LATENCY, REQUESTS
from app.telemetry.stats import scrape_registry

KNOWN_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
KNOWN_STATUSES = frozenset((200, 201, 204, 304, 400, 401, 403, 404, 405, 408, 409, 413, 415,
                            422, 429, 500, 502, 503, 504))


def method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else "other"


def status_label(status: int) -> str:
    return str(status) if status in KNOWN_STATUSES else "other"


def init_telemetry(app: Flask) -> None:
    @app.before_request
    def _start_timer():
        g._t0 = time.perf_counter()

    @app.after_request
    def _count(response):
        if request.path == "/metrics":
            return response
        # Every label from a bounded set (a client chooses the method and the status it
        # provokes; the endpoint is the route's rule, never the path it sent).
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        REQUESTS.labels(method_label(request.method), endpoint,
                        status_label(response.status_code)).inc()
        started = getattr(g, "_t0", None)
        if started is not None:
            LATENCY.labels(endpoint).observe(time.perf_counter() - started)
        return response


def metrics_text(handle) -> tuple[bytes, str]:
    """What GET /metrics answers (served by app.api.ops): body and content type."""
    return generate_latest(scrape_registry(handle)), CONTENT_TYPE_LATEST
