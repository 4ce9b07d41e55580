"""Figures kept in Redis, so they are right whichever process or host produced them.

The Celery workers' figures (rows flushed, flush lag, task retries) are counted in one
Redis hash; the pending queue's length is read from the queue's own keys at scrape time.
"""

from __future__ import annotations

import os

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from app.redis_keys import pending_points_key, pending_stream, stats_key
from app.telemetry.alert_stats import AlertStatsCollector

STATS_FIELDS = {
    b"rows_flushed": ("pulse_rows_flushed_total", "Raw rows written to the database", "counter"),
    b"task_retries": ("pulse_task_retries_total", "Celery task retries", "counter"),
    b"node_state_quarantined": ("pulse_node_state_quarantined_total",
                                "Nodes whose reported state the database refused (its "
                                "last-seen time kept, the rest dropped)", "counter"),
    b"flush_lag_ms": ("pulse_flush_lag_seconds", "Accept-to-row lag of the last flush", "gauge"),
    b"last_flush_ms": ("pulse_last_flush_timestamp_seconds", "When the last flush ended",
                       "gauge"),
}


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
        client, prefix = self.handle.client, self.handle.prefix
        try:
            pipe = client.pipeline(transaction=False)
            pipe.hgetall(stats_key(prefix))
            pipe.xlen(pending_stream(prefix))
            pipe.get(pending_points_key(prefix))
            stats, entries, points = pipe.execute()
        except Exception:  # Redis down: /readyz reports it; scrape what we can
            return
        yield GaugeMetricFamily("pulse_pending_entries", "Stream entries waiting for flush",
                                value=entries)
        yield GaugeMetricFamily("pulse_pending_points", "Points waiting for flush",
                                value=max(0, int(points or 0)))
        for field, (name, doc, kind) in STATS_FIELDS.items():
            value = float(stats.get(field, 0))
            if field.endswith(b"_ms"):
                value /= 1000.0
            if kind == "counter":
                yield CounterMetricFamily(name.removesuffix("_total"), doc, value=value)
            else:
                yield GaugeMetricFamily(name, doc, value=value)


def scrape_registry(handle):
    """What one scrape reports: this process's (or all workers') metrics + Redis stats."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(RedisStatsCollector(handle))
        registry.register(AlertStatsCollector(handle))
        return registry
    return _Combined(REGISTRY, RedisStatsCollector(handle), AlertStatsCollector(handle))


class _Combined:
    """The default registry plus collectors that must not be registered globally."""

    def __init__(self, *sources) -> None:
        self.sources = sources

    def collect(self):
        for source in self.sources:
            yield from source.collect()
