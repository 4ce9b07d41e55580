"""Alerting figures for /metrics, kept in Redis: evaluations and deliveries run in Celery
workers (any host), while /metrics is answered by the API processes.

`pulse_alerts_firing{severity}` (as of the last evaluation),
`pulse_notifications_total{kind,outcome}` (outcome: sent, retry, failed, silenced),
`pulse_alert_evaluation_seconds` (the last run) and its running sum.
"""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

SEVERITIES = ("warning", "critical")


def _alerts_key(prefix: str) -> str:
    return f"{prefix}:stats:alerts"


def _notifications_key(prefix: str) -> str:
    return f"{prefix}:stats:notifications"


def record_evaluation(client, prefix: str, firing: dict[str, int], seconds: float) -> None:
    pipe = client.pipeline(transaction=False)
    values = {f"firing:{s}": int(firing.get(s, 0)) for s in SEVERITIES}
    values["last_seconds"] = f"{seconds:.6f}"
    pipe.hset(_alerts_key(prefix), mapping=values)
    pipe.hincrbyfloat(_alerts_key(prefix), "seconds_total", seconds)
    pipe.hincrby(_alerts_key(prefix), "runs", 1)
    pipe.execute()


def record_notification(client, prefix: str, kind: str, outcome: str) -> None:
    client.hincrby(_notifications_key(prefix), f"{kind}|{outcome}", 1)


class AlertStatsCollector:
    def __init__(self, handle) -> None:
        self.handle = handle

    def collect(self):
        client, prefix = self.handle.client, self.handle.prefix
        try:
            pipe = client.pipeline(transaction=False)
            pipe.hgetall(_alerts_key(prefix))
            pipe.hgetall(_notifications_key(prefix))
            alerts, notifications = pipe.execute()
        except Exception:  # Redis down: /readyz reports it
            return
        firing = GaugeMetricFamily("pulse_alerts_firing", "Alerts firing at the last evaluation",
                                   labels=["severity"])
        for severity in SEVERITIES:
            firing.add_metric([severity], float(alerts.get(f"firing:{severity}".encode(), 0)))
        yield firing
        yield GaugeMetricFamily("pulse_alert_evaluation_seconds",
                                "Duration of the last alert evaluation",
                                value=float(alerts.get(b"last_seconds", 0)))
        yield CounterMetricFamily("pulse_alert_evaluation_seconds_spent",
                                  "Seconds spent evaluating alerts, all runs",
                                  value=float(alerts.get(b"seconds_total", 0)))
        sent = CounterMetricFamily("pulse_notifications", "Notification deliveries by outcome",
                                   labels=["kind", "outcome"])
        for name, count in sorted(notifications.items()):
            kind, _, outcome = name.decode().partition("|")
            sent.add_metric([kind, outcome], float(count))
        yield sent
