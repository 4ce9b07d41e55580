"""Telemetry: Prometheus metrics for GET /metrics.

Per-process metrics (requests, heartbeats; `metrics`) use prometheus_client, in
multiprocess mode when PROMETHEUS_MULTIPROC_DIR is set (several gunicorn workers; see
gunicorn.conf.py). Figures the Celery workers produce and the pending length are kept in
Redis and read at scrape time (`stats`).
"""

from __future__ import annotations

import time

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.extensions import get_redis
from app.telemetry.metrics import LATENCY, REQUESTS
from app.telemetry.stats import scrape_registry


def init_telemetry(app: Flask) -> None:
    @app.before_request
    def _start_timer():
        g._t0 = time.perf_counter()

    @app.after_request
    def _count(response):
        if request.path == "/metrics":
            return response
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        REQUESTS.labels(request.method, endpoint, str(response.status_code)).inc()
        started = getattr(g, "_t0", None)
        if started is not None:
            LATENCY.labels(endpoint).observe(time.perf_counter() - started)
        return response

    @app.get("/metrics")
    def metrics():
        return Response(generate_latest(scrape_registry(get_redis())),
                        mimetype=CONTENT_TYPE_LATEST)
