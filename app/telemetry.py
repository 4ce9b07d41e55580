"""Prometheus metrics for GET /metrics.

Per-process metrics (requests, heartbeats) use prometheus_client, in multiprocess mode
when PROMETHEUS_MULTIPROC_DIR is set (several gunicorn workers; see gunicorn.conf.py).
Figures that the Celery workers produce (rows flushed, flush lag, task retries) and the
pending length are kept in Redis and read at scrape time, so they are right whichever
process or host did the work.
"""

from __future__ import annotations

import os
import time

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

REQUESTS = Counter("pulse_http_requests_total", "HTTP requests", ["method", "endpoint", "status"])
LATENCY = Histogram(
    "pulse_http_request_duration_seconds", "HTTP request latency", ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
HEARTBEATS = Counter("pulse_heartbeats_total", "Heartbeat items by outcome (accepted or code)",
                     ["outcome"])

STATS_FIELDS = {
    b"rows_flushed": ("pulse_rows_flushed_total", "Raw rows written to the database", "counter"),
    b"task_retries": ("pulse_task_retries_total", "Celery task retries", "counter"),
    b"flush_lag_ms": ("pulse_flush_lag_seconds", "Accept-to-row lag of the last flush", "gauge"),
    b"last_flush_ms": ("pulse_last_flush_timestamp_seconds", "When the last flush ended",
                       "gauge"),
}


def stats_key(prefix: str) -> str:
    return f"{prefix}:stats"


def record_stats(client, prefix: str, increments: dict[str, int],
                 values: dict[str, int] | None = None) -> None:
    pipe = client.pipeline(transaction=False)
    for name, amount in increments.items():
        pipe.hincrby(stats_key(prefix), name, amount)
    if values:
        pipe.hset(stats_key(prefix), mapping=values)
    pipe.execute()


class RedisStatsCollector:
    def __init__(self, handle) -> None:
        self.handle = handle

    def collect(self):
        from app.services.pending import pending_length, pending_points

        client, prefix = self.handle.client, self.handle.prefix
        try:
            stats = client.hgetall(stats_key(prefix))
            entries = pending_length(client, prefix)
            points = pending_points(client, prefix)
        except Exception:  # Redis down: /readyz reports it; scrape what we can
            return
        yield GaugeMetricFamily("pulse_pending_entries", "Stream entries waiting for flush",
                                value=entries)
        yield GaugeMetricFamily("pulse_pending_points", "Points waiting for flush", value=points)
        for field, (name, doc, kind) in STATS_FIELDS.items():
            value = float(stats.get(field, 0))
            if field.endswith(b"_ms"):
                value /= 1000.0
            if kind == "counter":
                yield CounterMetricFamily(name.removesuffix("_total"), doc, value=value)
            else:
                yield GaugeMetricFamily(name, doc, value=value)


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
        from app.extensions import get_redis

        return Response(generate_latest(scrape_registry(get_redis())),
                        mimetype=CONTENT_TYPE_LATEST)


def scrape_registry(handle):
    """What one scrape reports: this process's (or all workers') metrics + Redis stats."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(RedisStatsCollector(handle))
        return registry
    return _Combined(REGISTRY, RedisStatsCollector(handle))


class _Combined:
    """The default registry plus collectors that must not be registered globally."""

    def __init__(self, *sources) -> None:
        self.sources = sources

    def collect(self):
        for source in self.sources:
            yield from source.collect()
