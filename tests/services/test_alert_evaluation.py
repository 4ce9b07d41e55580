"""evaluate_alerts(now=…) on back-dated points (SQLite, in-process Redis), deliveries
called in-process to a local receiver."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.alerting import (
    MINUTE,
    create_channel,
    create_rule,
    deliver_all,
    evaluate_each_minute,
    events,
    minute_start,
    outbox_rows,
    post_minutes,
)
from tests.support.receiver import Receiver


@pytest.fixture
def receiver():
    with Receiver() as rx:
        yield rx


@pytest.fixture
def setup(app, client, operator, node, node_probes, node_headers):
    return {"app": app, "client": client, "headers": operator.headers, "node": node,
            "probes": node_probes, "node_headers": node_headers}


def test_loss_fires_once_and_resolves_once_for_the_bad_probe_only(setup, receiver):
    s = setup
    channel = create_channel(s["client"], s["headers"], receiver.url("/hook"))
    rule = create_rule(s["client"], s["headers"], channel_ids=[channel])
    start = minute_start(20)
    bad = s["probes"][1]
    post_minutes(s["client"], s["node"]["id"], s["node_headers"], s["probes"], start, bad,
                 [0, 0, 0, 50, 50, 50, 0, 0, 0, 0])
    evaluate_each_minute(s["app"], start, 10, times=2)  # each one re-run by hand
    assert events(s["app"]) == [(f"probe:{bad}", "ok", "pending"),
                                (f"probe:{bad}", "pending", "firing"),
                                (f"probe:{bad}", "firing", "resolved")]
    assert deliver_all(s["app"]) == ["sent", "sent"]
    firing, resolved = receiver.bodies("/hook")
    assert [firing["status"], resolved["status"]] == ["firing", "resolved"]
    labels = firing["alerts"][0]["labels"]
    assert labels == {"alertname": "loss over 5%", "severity": "warning",
                      "node": "node-a", "probe": f"TCP #{bad[:8]}", "probe_id": bad,
                      "node_id": s["node"]["id"]}
    assert firing["version"] == "4" and firing["receiver"] == "hook"
    assert firing["alerts"][0]["annotations"]["value"] == "50"
    assert firing["alerts"][0]["endsAt"] == "0001-01-01T00:00:00Z"
    assert resolved["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"
    assert firing["alerts"][0]["fingerprint"] == resolved["alerts"][0]["fingerprint"]
    # the last evaluation re-run, and the deliveries again: nothing more
    evaluate_each_minute(s["app"], start + 9 * MINUTE, 1, times=3)
    assert len(events(s["app"])) == 3
    assert deliver_all(s["app"]) == []
    listed = s["client"].get("/api/v1/alerts?state=resolved", headers=s["headers"]).get_json()
    assert [a["rule_id"] for a in listed["data"]] == [rule["id"]]
    assert listed["data"][0]["subject"]["probe_id"] == bad


def test_latency_rule_ignores_dead_minutes(setup):
    """A dead target (null latency) neither fires a latency rule nor resolves it."""
    s = setup
    create_rule(s["client"], s["headers"], name="slow", metric="latency_ms", threshold=100)
    start = minute_start(15)
    bad = s["probes"][0]
    # slow, slow -> firing; dead, dead -> still firing; fast, fast -> resolved
    post_minutes(s["client"], s["node"]["id"], s["node_headers"], s["probes"], start, bad,
                 [150, 150, None, None, 10, 10], field="latency")
    evaluate_each_minute(s["app"], start, 6)
    transitions = [e[1:] for e in events(s["app"])]
    assert transitions == [("ok", "pending"), ("pending", "firing"), ("firing", "resolved")]
    from app.extensions import db
    from app.models import AlertEvent
    with s["app"].app_context():
        resolved_at = db.session.query(AlertEvent.at).filter_by(to_state="resolved").scalar()
    assert resolved_at.replace(tzinfo=UTC) == start + 5 * MINUTE + timedelta(seconds=30)


def test_a_silence_records_the_event_and_sends_nothing(setup, receiver):
    s = setup
    channel = create_channel(s["client"], s["headers"], receiver.url("/hook"))
    create_rule(s["client"], s["headers"], channel_ids=[channel])
    start = minute_start(12)
    r = s["client"].post("/api/v1/silences", json={
        "node_id": s["node"]["id"], "starts_at": (start - MINUTE).isoformat(),
        "ends_at": (start + 30 * MINUTE).isoformat(), "comment": "maintenance"},
        headers=s["headers"])
    assert r.status_code == 201, r.get_json()
    post_minutes(s["client"], s["node"]["id"], s["node_headers"], s["probes"], start,
                 s["probes"][0], [50, 50, 50, 0, 0])
    evaluate_each_minute(s["app"], start, 5)
    assert [e[2] for e in events(s["app"])] == ["pending", "firing", "resolved"]
    assert outbox_rows(s["app"]) == []
    assert receiver.hits() == []
    history = s["client"].get("/api/v1/alert-events", headers=s["headers"]).get_json()["data"]
    assert all(e["silenced"] for e in history if e["to_state"] in ("firing", "resolved"))


def test_repeat_minutes_renotifies_while_firing(setup, receiver):
    s = setup
    channel = create_channel(s["client"], s["headers"], receiver.url("/hook"))
    create_rule(s["client"], s["headers"], channel_ids=[channel], repeat_minutes=2)
    start = minute_start(12)
    post_minutes(s["client"], s["node"]["id"], s["node_headers"], s["probes"], start,
                 s["probes"][0], [50] * 7)
    evaluate_each_minute(s["app"], start, 7)
    # firing at minute 1, repeats at 3 and 5
    assert [e[2] for e in events(s["app"])] == ["pending", "firing", "repeat", "repeat"]
    assert deliver_all(s["app"]) == ["sent"] * 3
    fingerprints = {b["alerts"][0]["fingerprint"] for b in receiver.bodies("/hook")}
    assert len(fingerprints) == 1


def test_disabling_a_rule_resolves_its_firing_alerts(setup):
    s = setup
    rule = create_rule(s["client"], s["headers"])
    start = minute_start(6)
    post_minutes(s["client"], s["node"]["id"], s["node_headers"], s["probes"], start,
                 s["probes"][0], [50, 50])
    evaluate_each_minute(s["app"], start, 2)
    r = s["client"].patch(f"/api/v1/alert-rules/{rule['id']}", json={"enabled": False},
                          headers=s["headers"])
    assert r.status_code == 200
    evaluate_each_minute(s["app"], start + 2 * MINUTE, 1)
    assert [e[2] for e in events(s["app"])] == ["pending", "firing", "resolved"]


def test_drift_fires_for_a_drifted_instance_and_resolves_when_it_catches_up(setup):
    s = setup
    create_rule(s["client"], s["headers"], name="drift", metric="drift", op=None,
                threshold=None, for_minutes=2)
    s["client"].put("/api/drift/expected/pay/prod", json={"expected_version": "v2"},
                    headers=s["headers"])

    def report(version):
        r = s["client"].post("/api/drift/heartbeat/pay/prod", json={
            "instance_id": "pod-1", "config_version": version}, headers=s["headers"])
        assert r.status_code == 200

    report("v1")
    now = datetime.now(UTC)
    evaluate_each_minute(s["app"], now, 3, second=0)  # pending, -, firing
    report("v2")
    evaluate_each_minute(s["app"], now + 3 * MINUTE, 3, second=0)  # clear 0, 1, 2 min
    assert events(s["app"]) == [("drift:pay/prod/pod-1", "ok", "pending"),
                                ("drift:pay/prod/pod-1", "pending", "firing"),
                                ("drift:pay/prod/pod-1", "firing", "resolved")]
    # drifted again, then silent past PULSE_DRIFT_FORGET_HOURS (24): forgotten, resolved
    report("v1")
    later = now + 10 * MINUTE
    evaluate_each_minute(s["app"], later, 3, second=0)
    evaluate_each_minute(s["app"], later + timedelta(hours=25), 1, second=0)
    assert [e[2] for e in events(s["app"])][3:] == ["pending", "firing", "resolved"]
    listed = s["client"].get("/api/v1/alert-events", headers=s["headers"]).get_json()["data"]
    assert listed[0]["reason"] == "rule or subject gone"


def test_evaluation_figures_in_metrics(setup, receiver):
    s = setup
    channel = create_channel(s["client"], s["headers"], receiver.url("/hook"))
    create_rule(s["client"], s["headers"], channel_ids=[channel], severity="critical")
    start = minute_start(5)
    post_minutes(s["client"], s["node"]["id"], s["node_headers"], s["probes"], start,
                 s["probes"][2], [50, 50])
    evaluate_each_minute(s["app"], start, 2)
    deliver_all(s["app"])
    text = s["client"].get("/metrics").get_data(as_text=True)
    assert 'pulse_alerts_firing{severity="critical"} 1.0' in text
    assert 'pulse_notifications_total{kind="webhook",outcome="sent"} 1.0' in text
    assert "pulse_alert_evaluation_seconds " in text


def test_embedded_mode_delivers_in_process_threads_and_the_sweep_retries(setup, receiver):
    """No broker (make run): deliveries run on the process's delivery threads; a failed
    one is queued again and the sweep hands it over when due."""
    s = setup
    app = s["app"]
    app.extensions["pulse_scheduler"] = object()  # what worker.embedded registers
    app.config["PULSE_NOTIFY_BACKOFF_SECONDS"] = 1
    try:
        receiver.script("/embedded", [500])
        channel = create_channel(s["client"], s["headers"], receiver.url("/embedded"))
        create_rule(s["client"], s["headers"], channel_ids=[channel])
        start = minute_start(4)
        post_minutes(s["client"], s["node"]["id"], s["node_headers"], s["probes"], start,
                     s["probes"][0], [50, 50])
        evaluate_each_minute(app, start, 2)
        deadline = time.monotonic() + 10
        while not receiver.hits("/embedded") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [h["status"] for h in receiver.hits("/embedded")] == [500]
        deadline = time.monotonic() + 10
        while outbox_rows(app)[0][1] == "sending" and time.monotonic() < deadline:
            time.sleep(0.05)
        (outbox_id, status, attempts, error), = outbox_rows(app)
        assert (status, attempts, error) == ("queued", 1, "HTTP 500")
        from app.alerts.dispatch import dispatch
        from app.alerts.outbox import sweep

        with app.app_context():
            assert sweep() == []  # not due for another second
            time.sleep(1.1)
            due = sweep()
            assert due == [outbox_id]
            dispatch(due)
        deadline = time.monotonic() + 10
        while not receiver.bodies("/embedded") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(receiver.bodies("/embedded")) == 1
    finally:
        app.extensions.pop("pulse_scheduler")
