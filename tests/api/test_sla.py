"""GET /api/v1/reports/sla (SPEC §12): per probe over a period, JSON and CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest

from app.history.aggregation import aggregate_pending_minutes
from app.history.flush import flush_pending
from app.timeutil import iso_utc
from tests.support.api import assert_error

BATCH = "/api/v1/beacon/heartbeats"
URL = "/api/v1/reports/sla"


@pytest.fixture
def app(reset_app):
    """A fresh app for each test, without building one (tests.conftest.reset_app)."""
    return reset_app


def beat(node_id: str, ts: datetime, probe_id: str, latency: float | None,
         loss: float, jitter: float = 1.0) -> dict:
    return {"node_id": node_id, "timestamp": iso_utc(ts), "latency_ms": latency or 0,
            "packet_loss_rate": loss, "jitter_ms": jitter,
            "results": [{"probe_id": probe_id, "latency_ms": latency or 0,
                         "packet_loss_rate": loss, "jitter_ms": jitter}]}


@pytest.fixture
def period(app, client, node, node_headers, node_probes):
    """Six hours four hours back: probe 0 runs each minute of the first three hours
    (one of every ten runs dead), then nothing; probe 1 never runs."""
    start = (datetime.now(UTC) - timedelta(hours=10)).replace(minute=0, second=0,
                                                                microsecond=0)
    items = []
    for minute in range(180):
        dead = minute % 10 == 0
        items.append(beat(node["id"], start + timedelta(minutes=minute, seconds=5),
                          node_probes[0], None if dead else 10.0 + minute % 3,
                          100.0 if dead else 5.0))
    for chunk in range(0, len(items), 200):
        answer = client.post(BATCH, json={"heartbeats": items[chunk:chunk + 200]},
                             headers=node_headers).get_json()
        assert answer["accepted"] == len(items[chunk:chunk + 200]), answer
    with app.app_context():
        flush_pending()
        aggregate_pending_minutes()
    return {"start": start, "end": start + timedelta(hours=6)}


def get(client, headers, **args):
    query = {k: iso_utc(v) if isinstance(v, datetime) else v for k, v in args.items()}
    return client.get(f"{URL}?{urlencode(query)}", headers=headers)


def test_sla_per_probe(client, viewer, node, node_probes, period):
    response = get(client, viewer.headers, node_id=node["id"],
                   **{"from": period["start"], "to": period["end"]})
    answer = response.get_json()
    assert response.status_code == 200, answer
    rows = {r["probe_id"]: r for r in answer["data"]}
    assert set(rows) == set(node_probes)
    active = rows[node_probes[0]]
    assert active["expected_runs"] == 360           # 6 h ÷ 60 s
    assert active["runs_with_data"] == 180
    assert active["no_data_pct"] == 50.0
    assert active["availability_pct"] == 90.0       # 18 of 180 runs lost everything
    assert active["loss_mean_pct"] == 14.5          # (162 × 5 + 18 × 100) / 180
    assert active["latency_p50_ms"] == 11.0         # minutes at 10, 11, 12 ms
    assert active["latency_p99_ms"] == 12.0
    assert active["jitter_mean_ms"] == 1.0
    assert active["probe"] == f"TCP #{node_probes[0][:8]}"
    silent = rows[node_probes[1]]
    assert (silent["runs_with_data"], silent["no_data_pct"], silent["availability_pct"],
            silent["latency_p50_ms"]) == (0, 100.0, None, None)


def test_sla_counts_the_same_from_rollups_and_from_runs(app, client, viewer, node,
                                                        node_probes, period):
    """Whole hours come from the rollups, the period's partial hours from the runs."""
    whole = get(client, viewer.headers, node_id=node["id"],
                **{"from": period["start"], "to": period["end"]}).get_json()
    offset = get(client, viewer.headers, node_id=node["id"],
                 **{"from": period["start"] - timedelta(minutes=30),
                    "to": period["end"] - timedelta(minutes=30)}).get_json()
    first = {r["probe_id"]: r for r in whole["data"]}[node_probes[0]]
    shifted = {r["probe_id"]: r for r in offset["data"]}[node_probes[0]]
    assert shifted["runs_with_data"] == first["runs_with_data"] == 180
    assert shifted["availability_pct"] == first["availability_pct"]


def test_sla_as_csv(client, viewer, node, period):
    response = get(client, viewer.headers, node_id=node["id"], format="csv",
                   **{"from": period["start"], "to": period["end"]})
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert len(rows) == 3
    assert {r["runs_with_data"] for r in rows} == {"180", "0"}
    assert "192.0.2.1" not in response.get_data(as_text=True)  # labels, never targets


def test_sla_arguments(client, viewer, node):
    now = datetime.now(UTC)
    assert_error(get(client, viewer.headers, **{"from": now, "to": now - timedelta(hours=1)}),
                 400, "ERR_INVALID_TIMESTAMP")
    assert_error(get(client, viewer.headers, format="pdf"), 400, "ERR_VALIDATION")
    assert_error(get(client, viewer.headers, node_id="00000000-0000-0000-0000-000000000000"),
                 404, "ERR_NODE_NOT_FOUND")
    assert_error(client.get(URL), 401, "ERR_UNAUTHORIZED")
    assert get(client, viewer.headers).status_code == 200  # the last 30 days by default
