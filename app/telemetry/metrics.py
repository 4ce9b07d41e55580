"""The per-process Prometheus metrics (prometheus_client; multiprocess mode under gunicorn)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter("pulse_http_requests_total", "HTTP requests", ["method", "endpoint", "status"])
LATENCY = Histogram(
    "pulse_http_request_duration_seconds", "HTTP request latency", ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
HEARTBEATS = Counter("pulse_heartbeats_total", "Heartbeat items by outcome (accepted or code)",
                     ["outcome"])
