"""Steps the alerting tests share: back-dated points, rules, channels, evaluation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

MINUTE = timedelta(minutes=1)


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def minute_start(minutes_ago: int) -> datetime:
    """The start of the minute `minutes_ago` before the current one (inside the live hour)."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return now - timedelta(minutes=minutes_ago)


def post_run(client, node_id: str, node_headers: dict, ts: datetime,
             results: dict[str, dict]) -> None:
    """One heartbeat with one run per probe: results = {probe_id: {"loss": …, "latency": …}}."""
    body = {"node_id": node_id, "timestamp": iso(ts), "latency_ms": 10.0,
            "packet_loss_rate": 0.0, "jitter_ms": 1.0, "config_version": "cv",
            "results": []}
    for probe_id, values in results.items():
        latency = values.get("latency", 10.0)
        body["results"].append({
            "probe_id": probe_id, "timestamp": iso(ts), "latency_ms": latency,
            "packet_loss_rate": values.get("loss", 0.0), "jitter_ms": values.get("jitter", 1.0),
            "latency_p95_ms": None if latency is None else latency + 1,
            "sent": 10, "received": 0 if values.get("loss", 0.0) >= 100 else 10})
    response = client.post("/api/v1/beacon/heartbeat", json=body, headers=node_headers)
    assert response.status_code == 200, response.get_json()


def post_minutes(client, node_id: str, node_headers: dict, probes: list[str], start: datetime,
                 bad_probe: str, losses: list[float], field: str = "loss") -> None:
    """One run a minute (10 s in) for every probe from `start`: `bad_probe` gets `losses`
    (or latencies with field="latency"), the others stay healthy."""
    for i, value in enumerate(losses):
        results = {p: {} for p in probes}
        results[bad_probe] = {field: value}
        post_run(client, node_id, node_headers, start + i * MINUTE + timedelta(seconds=10),
                 results)


def create_channel(client, headers: dict, url: str, kind: str = "webhook",
                   name: str = "hook") -> str:
    response = client.post("/api/v1/notification-channels",
                           json={"name": name, "kind": kind, "url": url}, headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def create_rule(client, headers: dict, **fields) -> dict:
    body = {"name": "loss over 5%", "metric": "packet_loss_rate", "op": ">", "threshold": 5,
            "for_minutes": 2, **fields}
    response = client.post("/api/v1/alert-rules", json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def evaluate_each_minute(app, start: datetime, count: int, second: int = 30,
                         times: int = 1) -> list:
    """evaluate_alerts(now=start + i min + `second` s) for i in range(count), each `times`
    times (a re-run by hand)."""
    from worker.tasks import evaluate_alerts

    reports = []
    with app.app_context():
        for i in range(count):
            for _ in range(times):
                reports.append(evaluate_alerts(
                    now=start + i * MINUTE + timedelta(seconds=second)))
    return reports


def events(app) -> list[tuple[str, str, str]]:
    """(subject key, from, to) of every event, oldest first."""
    from app.extensions import db
    from app.models import Alert, AlertEvent

    with app.app_context():
        rows = db.session.execute(select(Alert.subject_key, AlertEvent.from_state,
                                         AlertEvent.to_state)
                                  .join(Alert, Alert.id == AlertEvent.alert_id)
                                  .order_by(AlertEvent.id)).all()
        db.session.remove()
    return [tuple(r) for r in rows]


def outbox_rows(app) -> list:
    from app.extensions import db
    from app.models import NotificationOutbox

    with app.app_context():
        rows = db.session.scalars(select(NotificationOutbox).order_by(
            NotificationOutbox.id)).all()
        result = [(r.id, r.status, r.attempts, r.last_error) for r in rows]
        db.session.remove()
    return result


def deliver_all(app) -> list[str]:
    """Deliver every queued outbox row in-process (no worker)."""
    from app.alerts.outbox import deliver

    outcomes = []
    with app.app_context():
        for outbox_id, status, _attempts, _error in outbox_rows(app):
            if status == "queued":
                outcomes.append(deliver(outbox_id).status)
    return outcomes
