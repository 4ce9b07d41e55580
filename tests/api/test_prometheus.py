"""GET /metrics: Prometheus text with request, heartbeat, pending and flush figures (SPEC §5
Operations).

Request and heartbeat counters are per process (shared by every app a test session
builds), so the tests compare a scrape before and after; the Redis-backed figures start
from zero with each app.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.history.flush import flush_pending

BEAT = "/api/v1/beacon/heartbeat"


@pytest.fixture
def app(reset_app):
    """A fresh app for each test, without building one (tests.conftest.reset_app)."""
    return reset_app


def scrape(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert "version=" in response.headers["Content-Type"]
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_is_prometheus_text_without_auth(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "# TYPE pulse_http_requests_total counter" in text
    assert "# TYPE pulse_heartbeats_total counter" in text
    assert "# TYPE pulse_pending_entries gauge" in text
    assert "# TYPE pulse_rows_flushed_total counter" in text


def test_requests_are_counted_by_method_endpoint_and_status(client, viewer, node):
    before = scrape(client)
    for _ in range(3):
        assert client.get(f"/api/v1/nodes/{node['id']}", headers=viewer.headers).status_code == 200
    assert client.get("/api/v1/nodes/not-a-uuid", headers=viewer.headers).status_code == 404
    after = scrape(client)
    labels = {"method": "GET", "endpoint": "/api/v1/nodes/<node_id>"}
    assert value(after, "pulse_http_requests_total", **labels, status="200") - value(
        before, "pulse_http_requests_total", **labels, status="200") == 3
    assert value(after, "pulse_http_requests_total", **labels, status="404") - value(
        before, "pulse_http_requests_total", **labels, status="404") == 1
    assert value(after, "pulse_http_request_duration_seconds_count",
                 endpoint="/api/v1/nodes/<node_id>") - value(
        before, "pulse_http_request_duration_seconds_count",
        endpoint="/api/v1/nodes/<node_id>") == 4


def test_scrapes_are_not_counted_as_requests(client):
    scrape(client)
    samples = scrape(client)
    assert not any(name == "pulse_http_requests_total" and ("endpoint", "/metrics") in labels
                   for name, labels in samples)


def test_heartbeats_are_counted_by_outcome(client, node, node_headers, node_probes,
                                           make_heartbeat):
    before = scrape(client)
    now = datetime.now(UTC)
    good = make_heartbeat(node["id"], now, node_probes)
    assert client.post(BEAT, json=good, headers=node_headers).status_code == 200
    assert client.post(BEAT, json={**good, "latency_ms": -1},
                       headers=node_headers).status_code == 400
    batch = client.post("/api/v1/beacon/heartbeats", json={"heartbeats": [
        good, {**good, "timestamp": "garbage"}, {**good, "jitter_ms": 70000}]},
        headers=node_headers)
    assert batch.status_code == 200 and len(batch.get_json()["rejected"]) == 2
    after = scrape(client)

    def delta(outcome: str) -> float:
        return value(after, "pulse_heartbeats_total", outcome=outcome) - value(
            before, "pulse_heartbeats_total", outcome=outcome)

    assert delta("accepted") == 2
    assert delta("ERR_INVALID_METRICS") == 2
    assert delta("ERR_INVALID_TIMESTAMP") == 1


def test_pending_entries_and_rows_flushed(app, client, node, node_headers, node_probes,
                                          make_heartbeat):
    start = scrape(client)
    assert value(start, "pulse_pending_entries") == 0
    assert value(start, "pulse_rows_flushed_total") == 0

    now = datetime.now(UTC)
    for second in (1, 2):
        body = make_heartbeat(node["id"], now.replace(second=second), node_probes)
        assert client.post(BEAT, json=body, headers=node_headers).status_code == 200
    queued = scrape(client)
    assert value(queued, "pulse_pending_entries") == 2
    assert value(queued, "pulse_pending_points") == 6
    assert value(queued, "pulse_rows_flushed_total") == 0

    with app.app_context():
        assert flush_pending().inserted == 6
    flushed = scrape(client)
    assert value(flushed, "pulse_pending_entries") == 0
    assert value(flushed, "pulse_pending_points") == 0
    assert value(flushed, "pulse_rows_flushed_total") == 6
    assert value(flushed, "pulse_last_flush_timestamp_seconds") > 0

    with app.app_context():
        flush_pending()  # nothing new: the counter stays
    assert value(scrape(client), "pulse_rows_flushed_total") == 6


def test_node_id_rejections_are_counted_too(client, node, node_headers, other_node,
                                            make_heartbeat):
    """Every rejection a Beacon is answered with shows in pulse_heartbeats_total, including
    the node_id checks the resource makes before the ingest service judges the rest."""
    before = scrape(client)
    now = datetime.now(UTC)
    foreign = make_heartbeat(other_node["id"], now)
    malformed = make_heartbeat("not-a-uuid", now)
    assert client.post(BEAT, json=foreign, headers=node_headers).status_code == 403
    assert client.post(BEAT, json=malformed, headers=node_headers).status_code == 400
    batch = client.post("/api/v1/beacon/heartbeats",
                        json={"heartbeats": [foreign, malformed, foreign]},
                        headers=node_headers).get_json()
    assert [r["code"] for r in batch["rejected"]] == [
        "ERR_NODE_MISMATCH", "ERR_INVALID_NODE_ID", "ERR_NODE_MISMATCH"]
    after = scrape(client)

    def delta(outcome: str) -> float:
        return value(after, "pulse_heartbeats_total", outcome=outcome) - value(
            before, "pulse_heartbeats_total", outcome=outcome)

    assert delta("ERR_NODE_MISMATCH") == 3
    assert delta("ERR_INVALID_NODE_ID") == 2
