"""Sending one message to one channel: a webhook in Alertmanager's format (version 4), so
existing receivers work unchanged, or apprise (one URL for any of its 100+ services).

Both wait at most 5 s for the receiver (apprise's own connect and read timeouts are 4 s
each) and verify TLS. A failure is described without the URL (a status code or an
exception class): the URL is a secret, and messages end up in logs and the outbox row.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import requests

from app.timeutil import iso_utc

TIMEOUT_SECONDS = 5
ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt of an alert still firing


@dataclass
class Message:
    """One notification: what happened to which alert."""

    status: str  # "firing" or "resolved" (a repeat is "firing" again)
    alert_id: str
    rule_name: str
    severity: str
    subject: dict
    value: float | None
    threshold: float | None
    metric: str
    starts_at: object
    ends_at: object | None
    receiver: str
    external_url: str
    test: bool = False

    @property
    def fingerprint(self) -> str:
        """The same for every message about one alert (firing, repeats, resolution)."""
        return hashlib.sha256(self.alert_id.encode()).hexdigest()[:16]

    @property
    def summary(self) -> str:
        what = f"{self.metric} {_fmt(self.value)}"
        if self.threshold is not None:
            what += f" (threshold {_fmt(self.threshold)})"
        return f"{self.rule_name}: {self.subject.get('label', '')} — {what}"


class DeliveryFailed(Exception):
    """A delivery that did not reach its receiver; the message holds no URL."""


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:g}"


def alertmanager_body(message: Message) -> dict:
    labels = {"alertname": message.rule_name, "severity": message.severity,
              "node": message.subject.get("node", ""), "probe": message.subject.get("probe", ""),
              "probe_id": message.subject.get("probe_id") or "",
              "node_id": message.subject.get("node_id") or ""}
    for extra in ("app", "profile", "instance_id"):
        if message.subject.get(extra):
            labels[extra] = message.subject[extra]
    annotations = {"summary": message.summary, "value": _fmt(message.value),
                   "threshold": _fmt(message.threshold)}
    ends_at = iso_utc(message.ends_at) if message.ends_at is not None else ZERO_TIME
    base = message.external_url.rstrip("/")
    alert = {"status": message.status, "labels": labels, "annotations": annotations,
             "startsAt": iso_utc(message.starts_at), "endsAt": ends_at,
             "generatorURL": f"{base}/alerts", "fingerprint": message.fingerprint}
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{message.rule_name}"}}',
        "truncatedAlerts": 0,
        "status": message.status,
        "receiver": message.receiver,
        "groupLabels": {"alertname": message.rule_name},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": base,
        "alerts": [alert],
    }


def send_webhook(url: str, message: Message) -> None:
    try:
        response = requests.post(url, json=alertmanager_body(message), timeout=TIMEOUT_SECONDS,
                                 verify=True, allow_redirects=False)
    except requests.RequestException as exc:
        raise DeliveryFailed(type(exc).__name__) from None
    if not 200 <= response.status_code < 300:
        raise DeliveryFailed(f"HTTP {response.status_code}")


class _QuietApprise(logging.Filter):
    """Apprise's debug lines name the whole URL: dropped; the others lose the secret."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO:
            return False
        text = record.getMessage()
        if self.url in text:
            record.msg, record.args = text.replace(self.url, "<channel url>"), ()
        return True


def send_apprise(url: str, message: Message) -> None:
    import apprise

    title = f"[{message.status.upper()}] {message.rule_name}"
    if message.test:
        title = "[TEST] Pulse notification channel"
    notify_type = apprise.NotifyType.SUCCESS if message.status == "resolved" \
        else apprise.NotifyType.FAILURE
    logger = logging.getLogger("apprise")
    quiet = _QuietApprise(url)
    logger.addFilter(quiet)
    try:
        sender = apprise.Apprise()
        if not sender.add(url):
            raise DeliveryFailed("apprise does not accept this URL")
        if not sender.notify(title=title, body=message.summary, notify_type=notify_type):
            raise DeliveryFailed("apprise: not delivered")
    finally:
        logger.removeFilter(quiet)


class _NoDebug(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.INFO


_URLLIB3_QUIET = _NoDebug()


def _hide_request_lines() -> None:
    """urllib3 logs each request line (the URL's path and query: a channel's secret) at
    DEBUG; those lines are dropped in a process that sends notifications."""
    logger = logging.getLogger("urllib3.connectionpool")
    if _URLLIB3_QUIET not in logger.filters:
        logger.addFilter(_URLLIB3_QUIET)


def send(kind: str, url: str, message: Message) -> None:
    """Deliver `message`; raises DeliveryFailed."""
    _hide_request_lines()
    (send_webhook if kind == "webhook" else send_apprise)(url, message)


def apprise_accepts(url: str) -> bool:
    import apprise

    logger = logging.getLogger("apprise")
    quiet = _QuietApprise(url)
    logger.addFilter(quiet)
    try:
        return bool(apprise.Apprise().add(url))
    finally:
        logger.removeFilter(quiet)
