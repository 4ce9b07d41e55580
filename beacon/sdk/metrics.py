"""Optional Prometheus metrics for the SDK.

prometheus_client is never imported by the SDK itself: metrics are recorded only when the
host application has already imported it (an application that exports metrics has) or
asks for them explicitly. This keeps the SDK's footprint at "requests + a thread".
"""

from __future__ import annotations

import importlib
import sys
import threading
from typing import Any

_lock = threading.Lock()
_metrics: dict[str, Any] | None = None


def _load(force: bool) -> dict[str, Any] | None:
    global _metrics
    if _metrics is not None:
        return _metrics
    if not force and "prometheus_client" not in sys.modules:
        return None
    with _lock:
        if _metrics is None:
            try:
                prom = importlib.import_module("prometheus_client")
            except ImportError:
                return None
            _metrics = {
                "total": prom.Counter("heartbeat_total", "Heartbeats sent, by outcome", ["status"]),
                "duration": prom.Histogram(
                    "heartbeat_duration_seconds", "Heartbeat delivery time incl. retries"
                ),
                "drift": prom.Gauge(
                    "heartbeat_drift_detected", "1 when the server reported config drift"
                ),
            }
    return _metrics


def record(ok: bool, duration_seconds: float, drift: bool | None, force: bool = False) -> None:
    """Record one heartbeat outcome; a no-op when prometheus_client is not in use."""
    metrics = _load(force)
    if metrics is None:
        return
    metrics["total"].labels(status="success" if ok else "error").inc()
    metrics["duration"].observe(duration_seconds)
    if drift is not None:
        metrics["drift"].set(1.0 if drift else 0.0)
