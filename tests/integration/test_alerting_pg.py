"""Alerting on real PostgreSQL, Redis and Celery workers (SPEC §11): back-dated points,
evaluate_alerts(now=…) run by two workers at once, by hand and by threads — still one
firing and one resolved message; flapping never fires; node_offline; silences."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest

from tests.integration.alerting_steps import own_broker, send_evaluation, wait_finished
from tests.integration.conftest import wait_until
from tests.integration.helpers import setup_node
from tests.support.alerting import (
    MINUTE,
    create_channel,
    create_rule,
    evaluate_each_minute,
    events,
    minute_start,
    outbox_rows,
    post_minutes,
    post_run,
)
from tests.support.receiver import Receiver

pytestmark = pytest.mark.integration


@pytest.fixture
def server_env(server_env):
    return own_broker(server_env)


@pytest.fixture
def receiver():
    with Receiver() as rx:
        yield rx


@pytest.fixture
def ctx(pg_app):
    return setup_node(pg_app, probe_count=3)


def _evaluate_in_threads(app, now: datetime, threads: int = 3) -> None:
    """The same evaluation in several threads at once, each on its own connection."""
    from worker.tasks import evaluate_alerts

    barrier = threading.Barrier(threads)
    errors = []

    def one():
        try:
            with app.app_context():
                barrier.wait(10)
                evaluate_alerts(now=now)
        except Exception as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=one) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(60)
    assert errors == []


def test_one_firing_and_one_resolved_whoever_evaluates(pg_app, server_env, ctx, receiver,
                                                       celery_processes):
    client, headers = ctx["client"], ctx["operator_headers"]
    channel = create_channel(client, headers, receiver.url("/hook"))
    create_rule(client, headers, channel_ids=[channel])  # loss > 5 % for 2 min, every probe
    bad, probes = ctx["probe_ids"][1], ctx["probe_ids"]
    start = minute_start(20)
    losses = [0, 0, 0, 50, 50, 50, 0, 0, 0, 0]
    post_minutes(client, ctx["node_id"], ctx["node_headers"], probes, start, bad, losses)
    workers = [celery_processes("worker"), celery_processes("worker")]
    for i in range(len(losses)):
        now = start + i * MINUTE + MINUTE / 2
        send_evaluation(server_env, now, copies=2)  # two workers at once
        _evaluate_in_threads(pg_app, now)  # and three threads here
        evaluate_each_minute(pg_app, now, 1, second=0)  # and by hand
        wait_finished(workers, 2 * (i + 1))
    assert events(pg_app) == [(f"probe:{bad}", "ok", "pending"),
                              (f"probe:{bad}", "pending", "firing"),
                              (f"probe:{bad}", "firing", "resolved")]
    wait_until(lambda: len(receiver.hits("/hook")) >= 2, 30, message="two deliveries")
    time.sleep(2)  # nothing more comes
    firing, resolved = receiver.bodies("/hook")
    assert len(receiver.hits()) == 2
    assert (firing["status"], resolved["status"]) == ("firing", "resolved")
    labels = firing["alerts"][0]["labels"]
    assert (labels["probe_id"], labels["node_id"], labels["alertname"]) == (
        bad, ctx["node_id"], "loss over 5%")
    assert firing["alerts"][0]["startsAt"] == resolved["alerts"][0]["startsAt"]
    assert [row[1:3] for row in outbox_rows(pg_app)] == [("sent", 1), ("sent", 1)]


def test_a_flapping_path_never_fires(pg_app, ctx):
    pg_app.config["CELERY_BROKER_URL"] = None  # no worker here: deliveries stay queued
    client, headers = ctx["client"], ctx["operator_headers"]
    create_rule(client, headers, for_minutes=3)
    start = minute_start(16)
    post_minutes(client, ctx["node_id"], ctx["node_headers"], ctx["probe_ids"], start,
                 ctx["probe_ids"][0], [0, 50] * 7)
    evaluate_each_minute(pg_app, start, 14)
    transitions = [e[2] for e in events(pg_app)]
    assert "firing" not in transitions
    assert transitions.count("pending") == 7  # it did see every bad minute


def test_node_offline_fires_when_a_node_stops_and_resolves_when_it_returns(
        pg_app, ctx, receiver, celery_processes):
    client, headers = ctx["client"], ctx["operator_headers"]
    channel = create_channel(client, headers, receiver.url("/offline"))
    create_rule(client, headers, name="offline", metric="node_offline", op=None,
                threshold=None, for_minutes=3, channel_ids=[channel], severity="critical")
    celery_processes("worker")
    seen = datetime.now(UTC)
    post_run(client, ctx["node_id"], ctx["node_headers"], seen, {})  # liveness only
    evaluate_each_minute(pg_app, seen + 2 * MINUTE, 1)  # silent 2.5 min: not yet
    assert events(pg_app) == []
    evaluate_each_minute(pg_app, seen + 3 * MINUTE, 2)  # silent 3.5, then 4.5 min
    assert events(pg_app) == [(f"node:{ctx['node_id']}", "ok", "pending"),
                              (f"node:{ctx['node_id']}", "pending", "firing")]
    post_run(client, ctx["node_id"], ctx["node_headers"], datetime.now(UTC), {})  # back
    evaluate_each_minute(pg_app, datetime.now(UTC), 1, second=0)
    assert [e[2] for e in events(pg_app)] == ["pending", "firing", "resolved"]
    wait_until(lambda: len(receiver.bodies("/offline")) == 2, 30, message="2 messages")
    firing, resolved = receiver.bodies("/offline")
    assert firing["alerts"][0]["labels"]["severity"] == "critical"
    assert firing["alerts"][0]["labels"]["node_id"] == ctx["node_id"]
    assert (firing["status"], resolved["status"]) == ("firing", "resolved")


def test_a_silence_records_the_event_and_nothing_is_sent(pg_app, ctx, receiver,
                                                         celery_processes):
    client, headers = ctx["client"], ctx["operator_headers"]
    channel = create_channel(client, headers, receiver.url("/silenced"))
    rule = create_rule(client, headers, channel_ids=[channel])
    start = minute_start(10)
    r = client.post("/api/v1/silences", json={
        "rule_id": rule["id"], "starts_at": (start - MINUTE).isoformat(),
        "ends_at": (start + 60 * MINUTE).isoformat(), "comment": "maintenance"},
        headers=headers)
    assert r.status_code == 201, r.get_json()
    celery_processes("worker")
    post_minutes(client, ctx["node_id"], ctx["node_headers"], ctx["probe_ids"], start,
                 ctx["probe_ids"][2], [50, 50, 50, 0, 0])
    evaluate_each_minute(pg_app, start, 5)
    assert [e[2] for e in events(pg_app)] == ["pending", "firing", "resolved"]
    listed = client.get("/api/v1/alert-events", headers=headers).get_json()["data"]
    assert [e["silenced"] for e in listed if e["to_state"] != "pending"] == [True, True]
    time.sleep(3)  # a worker is running: had anything been queued, it would be sent
    assert outbox_rows(pg_app) == [] and receiver.hits() == []


def _seed_rollups(app, node_id: str, probe_id: str, latency_ms: float, hours: int) -> None:
    """`hours` hourly rollups before the current hour, as issue 13's rollup job writes."""
    from app.extensions import db
    from app.models import MetricRollup

    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    with app.app_context():
        for h in range(1, hours + 1):
            db.session.add(MetricRollup(
                node_id=node_id, probe_id=probe_id, hour=now - h * 60 * MINUTE,
                latency_ms=latency_ms + (h % 3) * 0.1, latency_min_ms=latency_ms,
                latency_max_ms=latency_ms * 2, latency_median_ms=latency_ms,
                latency_p95_ms=latency_ms * 1.5, packet_loss_rate=0, packet_loss_max=0,
                jitter_ms=0.1, jitter_max_ms=0.2, sample_count=60, latency_sample_count=60,
                runs_available=60))
        db.session.commit()
        db.session.remove()


def test_a_baseline_rule_fires_on_2_to_5_ms_and_not_on_200_to_210_ms(pg_app, ctx,
                                                                     monkeypatch):
    pg_app.config["CELERY_BROKER_URL"] = None
    client, headers = ctx["client"], ctx["operator_headers"]
    short, long_, young = ctx["probe_ids"]
    _seed_rollups(pg_app, ctx["node_id"], short, 2.0, 7 * 24)
    _seed_rollups(pg_app, ctx["node_id"], long_, 200.0, 7 * 24)
    _seed_rollups(pg_app, ctx["node_id"], young, 2.0, 20)  # < 24 h: not evaluated
    create_rule(client, headers, name="latency doubled", metric="latency_ms", mode="baseline",
                threshold=2, for_minutes=2)
    from app.alerts import baseline

    queries = []
    real_query = baseline.query_medians
    monkeypatch.setattr(baseline, "query_medians",
                        lambda *a: queries.append(a) or real_query(*a))
    start = minute_start(6)
    for i in range(3):
        post_run(client, ctx["node_id"], ctx["node_headers"], start + i * MINUTE, {
            short: {"latency": 5.0}, long_: {"latency": 210.0}, young: {"latency": 900.0}})
    evaluate_each_minute(pg_app, start, 3)
    assert events(pg_app) == [(f"probe:{short}", "ok", "pending"),
                              (f"probe:{short}", "pending", "firing")]
    assert len(queries) == 1  # the medians are computed at most hourly, then cached
    with pg_app.app_context():
        medians = baseline.query_medians("latency_ms", datetime.now(UTC))
    assert medians[short] == pytest.approx(2.1) and medians[long_] == pytest.approx(200.1)
    assert young not in medians


def test_event_times_reach_postgresql_in_utc(pg_app, ctx):
    """A UTC offset ISO 8601 allows but PostgreSQL refuses (beyond ±15:59) is converted,
    and a year out of range is a 400 (the OpenAPI fuzz found both as 500s)."""
    client, headers = ctx["client"], ctx["operator_headers"]
    url = "/api/v1/alert-events"
    assert client.get(f"{url}?to=2030-01-01T00:00:00-18:47", headers=headers).status_code == 200
    answer = client.get(f"{url}?from=0853-01-11T13:34:21Z&to=0599-08-08T15:05:32-18:47",
                        headers=headers)
    assert answer.status_code == 400
    assert answer.get_json()["code"] in ("ERR_INVALID_TIMESTAMP", "ERR_VALIDATION")


def test_report_and_silence_times_reach_postgresql_in_utc(pg_app, ctx):
    """The same offsets on the SLA report's query and a silence's body: converted to UTC
    (a silence keeps its instant), a year out of range a 400, never a 500."""
    client, headers = ctx["client"], ctx["operator_headers"]
    answer = client.get("/api/v1/reports/sla?from=2026-01-01T00:00:00-18:47"
                        "&to=2026-01-03T00:00:00%2B18:30", headers=headers)
    assert answer.status_code == 200, answer.get_json()
    assert client.get("/api/v1/reports/sla?from=0599-08-08T15:05:32-18:47",
                      headers=headers).status_code == 400
    created = client.post("/api/v1/silences", headers=headers, json={
        "starts_at": "2030-01-01T00:00:00-18:47", "ends_at": "2030-01-02T00:00:00-18:47",
        "comment": "offset"})
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["starts_at"] == "2030-01-01T18:47:00Z"
    refused = client.post("/api/v1/silences", headers=headers, json={
        "starts_at": "0599-08-08T15:05:32-18:47", "ends_at": "2030-01-02T00:00:00Z"})
    assert refused.status_code == 400 and refused.get_json()["code"] == "ERR_INVALID_SILENCE"
