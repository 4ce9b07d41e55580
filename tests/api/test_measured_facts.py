"""Every measured fact kept, and no number that misleads (issue 10; SPEC §4, §5, §7).

A run's spread, counts and error reach the answers from the live cache and from the
database; a dead run is null, never 0; a starting agent stores no summary; series carry
viewer-safe labels; a node's history outlives the live hour; answers are rounded; CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from app.extensions import db
from app.history.aggregation import aggregate_pending_minutes
from app.history.flush import flush_pending
from app.models import Metric
from app.timeutil import iso_utc

BEAT = "/api/v1/beacon/heartbeat"
BATCH = "/api/v1/beacon/heartbeats"


@pytest.fixture
def app(reset_app):
    """A fresh app for each test, without building one (tests.conftest.reset_app)."""
    return reset_app


def run(probe_id: str, **fields) -> dict:
    """A result as today's Beacon sends it: a 10-sample run of ~20 ms."""
    return {"probe_id": probe_id, "latency_ms": 20.5, "packet_loss_rate": 10.0,
            "jitter_ms": 1.25, "latency_min_ms": 18.0, "latency_median_ms": 20.25,
            "latency_p95_ms": 24.5, "latency_max_ms": 25.0, "latency_variance": 3.5,
            "sent": 10, "received": 9, "error": "ERR_CONNECTION_TIMEOUT", **fields}


def dead(probe_id: str) -> dict:
    """A refused probe as today's agents send it: 0 ms for a run that received nothing."""
    return {"probe_id": probe_id, "latency_ms": 0.0, "packet_loss_rate": 100.0,
            "jitter_ms": 0.0, "sent": 10, "received": 0, "error": "ERR_CONNECTION_REFUSED"}


def beat(node_id: str, ts: datetime, results: list[dict], **fields) -> dict:
    return {"node_id": node_id, "timestamp": iso_utc(ts), "latency_ms": 20.5,
            "packet_loss_rate": 55.0, "jitter_ms": 1.25, "results": results, **fields}


def query(client, headers, node_id: str, **args):
    query = {k: iso_utc(v) if isinstance(v, datetime) else v for k, v in args.items()}
    response = client.get(f"/api/v1/nodes/{node_id}/metrics?{urlencode(query)}",
                          headers=headers)
    assert response.status_code == 200, response.data[:300]
    return response


def metrics(client, headers, node_id: str, **args) -> dict:
    return query(client, headers, node_id, **args).get_json()


SPREAD = {"latency_ms": 20.5, "packet_loss_rate": 10.0, "jitter_ms": 1.25,
          "latency_min_ms": 18.0, "latency_median_ms": 20.25, "latency_p95_ms": 24.5,
          "latency_max_ms": 25.0, "sent": 10, "received": 9, "error": "ERR_CONNECTION_TIMEOUT"}
DEAD = {"latency_ms": None, "packet_loss_rate": 100.0, "jitter_ms": None,
        "latency_min_ms": None, "latency_median_ms": None, "latency_p95_ms": None,
        "latency_max_ms": None, "sent": 10, "received": 0, "error": "ERR_CONNECTION_REFUSED"}


def shown(point: dict) -> dict:
    return {k: v for k, v in point.items() if k != "timestamp"}


def test_a_runs_spread_counts_and_error_are_answered_live_and_after_the_flush(
        app, client, viewer, node, node_headers, node_probes):
    now = datetime.now(UTC).replace(microsecond=0)
    body = beat(node["id"], now - timedelta(minutes=2),
                [run(node_probes[0]), dead(node_probes[1])])
    assert client.post(BEAT, json=body, headers=node_headers).status_code == 200
    for stage in ("live", "flushed"):
        for probe_id, expected in ((node_probes[0], SPREAD), (node_probes[1], DEAD)):
            answer = metrics(client, viewer.headers, node["id"], probe_id=probe_id,
                             resolution="raw")
            assert [shown(p) for p in answer["points"]] == [expected], stage
        with app.app_context():
            flush_pending()
    with app.app_context():
        rows = {str(m.probe_id): m for m in db.session.scalars(select(Metric))}
        good, refused = rows[node_probes[0]], rows[node_probes[1]]
        assert (float(good.latency_median_ms), float(good.latency_p95_ms), good.sent,
                good.received, good.error_code) == (20.25, 24.5, 10, 9, "ERR_CONNECTION_TIMEOUT")
        assert (refused.latency_ms, refused.jitter_ms, refused.latency_min_ms,
                refused.error_code) == (None, None, None, "ERR_CONNECTION_REFUSED")


def test_minutes_and_hours_keep_the_spread_and_never_count_a_dead_run_as_0(
        app, client, viewer, node, node_headers, node_probes):
    minute = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=10, second=0,
                                                                 microsecond=0)
    probe = node_probes[0]
    items = [beat(node["id"], minute + timedelta(seconds=5), [run(probe)]),
             beat(node["id"], minute + timedelta(seconds=25), [dead(probe)]),
             beat(node["id"], minute + timedelta(seconds=45),
                  [run(probe, latency_ms=30.32, latency_median_ms=30.11, latency_p95_ms=40.0,
                       latency_min_ms=28.0, latency_max_ms=41.0, jitter_ms=2.01)])]
    assert client.post(BATCH, json={"heartbeats": items},
                       headers=node_headers).get_json()["accepted"] == 3
    with app.app_context():
        flush_pending()
        aggregate_pending_minutes()
    for resolution in ("1m", "1h"):
        [point] = metrics(client, viewer.headers, node["id"], probe_id=probe,
                          resolution=resolution, **{"from": minute - timedelta(hours=1),
                                                     "to": minute + timedelta(hours=1)})[
            "points"]
        assert point["latency_ms"] == 25.41                 # (20.5 + 30.32) / 2
        assert point["latency_min_ms"] == 18.0              # not the dead run's 0
        assert point["latency_max_ms"] == 41.0
        assert point["latency_median_ms"] == 25.18          # mean of the medians
        assert point["latency_p95_ms"] == 32.25             # mean of the p95s
        assert point["packet_loss_rate"] == 40.0            # (10 + 100 + 10) / 3: all runs
        assert point["jitter_ms"] == 1.63 and point["jitter_max_ms"] == 2.01
        assert point["sample_count"] == 3
        if resolution == "1m":  # the hourly rollups keep runs, not samples (SPEC §12)
            assert (point["sent"], point["received"]) == (30, 18)


def test_a_heartbeat_without_results_is_liveness_only(app, client, viewer, node,
                                                      node_headers):
    """A starting agent reports 0 ms / 100 % before its first run: no false outage."""
    now = datetime.now(UTC)
    body = {"node_id": node["id"], "timestamp": iso_utc(now), "latency_ms": 0,
            "packet_loss_rate": 100, "jitter_ms": 0, "results": []}
    answer = client.post(BEAT, json=body, headers=node_headers).get_json()
    assert answer["accepted"] == 0 and answer["warnings"] == []
    live = client.get(f"/api/v1/nodes/{node['id']}/live", headers=viewer.headers).get_json()
    assert live["summary"] == []
    item = client.get(f"/api/v1/nodes/{node['id']}", headers=viewer.headers).get_json()
    assert item["status"] == "online" and item["uptime_24h"] > 0
    [overview] = client.get("/api/v1/overview", headers=viewer.headers).get_json()["data"]
    assert overview["latest"] is None and overview["status"] == "online"


def test_every_series_carries_a_viewer_safe_label(client, operator, viewer, node,
                                                  node_headers, node_probes):
    client.patch(f"/api/v1/probes/{node_probes[0]}", json={"name": "to-paris"},
                 headers=operator.headers)
    now = datetime.now(UTC)
    client.post(BEAT, json=beat(node["id"], now, [run(p) for p in node_probes]),
                headers=node_headers)
    response = client.get(f"/api/v1/nodes/{node['id']}/live", headers=viewer.headers)
    live = response.get_json()
    labels = [(p["name"], p["type"], p["label"]) for p in live["probes"]]
    assert labels[0] == ("to-paris", "TCP", "to-paris")
    assert labels[1] == (None, "TCP", f"TCP #{node_probes[1][:8]}")
    assert b"192.0.2.1" not in response.data                 # no target for a viewer
    answer = metrics(client, viewer.headers, node["id"], probe_id=node_probes[1])
    assert answer["probe"] == {"name": None, "type": "TCP", "label": f"TCP #{node_probes[1][:8]}"}


def test_the_node_series_outlives_the_live_hour_with_slow_probes_carried_forward(
        app, client, operator, viewer, node, node_headers, node_probes):
    """Beyond the live hour: the mean over the probes' minutes, a 300 s probe counted in
    each of the five minutes after its run."""
    fast, slow = node_probes[0], node_probes[1]
    client.patch(f"/api/v1/probes/{slow}", json={"interval_seconds": 300},
                 headers=operator.headers)
    client.delete(f"/api/v1/probes/{node_probes[2]}?confirm=true", headers=operator.headers)
    base = (datetime.now(UTC) - timedelta(hours=4)).replace(minute=0, second=0, microsecond=0)
    items = [beat(node["id"], base + timedelta(minutes=m, seconds=10),
                  [run(fast, latency_ms=10.0, packet_loss_rate=0.0)]) for m in range(7)]
    items.append(beat(node["id"], base + timedelta(seconds=20),
                      [run(slow, latency_ms=30.0, packet_loss_rate=50.0)]))
    assert client.post(BATCH, json={"heartbeats": items},
                       headers=node_headers).get_json()["accepted"] == 8
    with app.app_context():
        flush_pending()
        aggregate_pending_minutes()
    answer = metrics(client, viewer.headers, node["id"], resolution="1m",
                     **{"from": base, "to": base + timedelta(minutes=6, seconds=59)})
    points = [(p["timestamp"], p["latency_ms"], p["packet_loss_rate"], p["sample_count"])
              for p in answer["points"]]
    with_slow = [(iso_utc(base + timedelta(minutes=m)), 20.0, 25.0, 2) for m in range(5)]
    alone = [(iso_utc(base + timedelta(minutes=m)), 10.0, 0.0, 1) for m in (5, 6)]
    assert points == with_slow + alone


def test_values_are_rounded_to_two_decimals(app, client, viewer, node, node_headers,
                                             node_probes):
    minute = (datetime.now(UTC) - timedelta(hours=2)).replace(second=0, microsecond=0)
    items = [beat(node["id"], minute + timedelta(seconds=s), [run(node_probes[0],
                                                                  latency_ms=lat)])
             for s, lat in ((1, 25.11), (2, 25.12), (3, 25.13), (4, 26.11), (5, 25.1),
                            (6, 25.1))]
    client.post(BATCH, json={"heartbeats": items}, headers=node_headers)
    with app.app_context():
        flush_pending()
        aggregate_pending_minutes()
    for resolution in ("1m", "1h"):
        [point] = metrics(client, viewer.headers, node["id"], probe_id=node_probes[0],
                          resolution=resolution, **{"from": minute - timedelta(hours=1),
                                                     "to": minute + timedelta(hours=1)})[
            "points"]
        assert point["latency_ms"] == 25.28  # 151.68 / 6 = 25.28 exactly, no float tail
        assert all(v == round(v, 2) for v in point.values() if isinstance(v, float))


def test_csv_streams_the_same_points(client, viewer, node, node_headers, node_probes):
    now = datetime.now(UTC).replace(microsecond=0)
    client.post(BEAT, json=beat(node["id"], now - timedelta(minutes=3),
                                [run(node_probes[0]), dead(node_probes[1])]),
                headers=node_headers)
    for args, headers in (({"format": "csv"}, viewer.headers),
                          ({}, {**viewer.headers, "Accept": "text/csv"})):
        response = query(client, headers, node["id"], probe_id=node_probes[1], **args)
        assert response.mimetype == "text/csv"
        assert "attachment" in response.headers["Content-Disposition"]
        rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
        assert len(rows) == 1
        assert rows[0]["timestamp"] == iso_utc(now - timedelta(minutes=3))
        assert (rows[0]["latency_ms"], rows[0]["packet_loss_rate"], rows[0]["error"]) == (
            "", "100.0", "ERR_CONNECTION_REFUSED")
    as_json = metrics(client, viewer.headers, node["id"], probe_id=node_probes[0])
    assert as_json["points"][0]["latency_median_ms"] == 20.25
    bad = client.get(f"/api/v1/nodes/{node['id']}/metrics?format=xml", headers=viewer.headers)
    assert bad.status_code == 400 and bad.get_json()["code"] == "ERR_VALIDATION"


def test_metadata_over_the_limits_is_cut_and_the_points_kept(client, node, node_headers,
                                                            node_probes):
    metadata = {"hostname": "h" * 300, "region": "eu\x00west", "nested": {"a": 1},
                **{f"k{i}": i for i in range(40)}}
    body = beat(node["id"], datetime.now(UTC), [run(node_probes[0])], metadata=metadata,
                agent_version="v" * 200, config_version="cv\x07")
    response = client.post(BEAT, json=body, headers=node_headers)
    answer = response.get_json()
    assert response.status_code == 200 and answer["accepted"] == 1, answer
    fields = {w["field"] for w in answer["warnings"]}
    assert {"metadata.hostname", "metadata.region", "metadata.nested", "metadata",
            "agent_version", "config_version"} <= fields
    batch = client.post(BATCH, json={"heartbeats": [body]}, headers=node_headers).get_json()
    assert batch["accepted"] == 1 and batch["rejected"] == []
    assert {w["index"] for w in batch["warnings"]} == {0}


def test_unknown_error_codes_are_stored_as_socket_errors(client, viewer, node, node_headers,
                                                         node_probes):
    client.post(BEAT, json=beat(node["id"], datetime.now(UTC),
                                [run(node_probes[0], error="EHOSTDOWN\x00")]),
                headers=node_headers)
    [point] = metrics(client, viewer.headers, node["id"], probe_id=node_probes[0])["points"]
    assert point["error"] == "ERR_SOCKET"
