"""The node page's chart columns on real PostgreSQL hold exactly the points the API answers:
the stored minutes and rollups are read there as rows of the chart's fields (epoch ms and
probe ids computed in SQL, values rounded in SQL), the live tail as points."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.extensions import db
from app.history.aggregation import aggregate_pending_minutes
from app.history.columns import CHART_FIELDS, chart_columns
from app.history.flush import flush_pending
from app.models import Metric, MetricRollup
from tests.integration.helpers import iso, setup_node

pytestmark = pytest.mark.integration
BATCH = "/api/v1/beacon/heartbeats"


def _heartbeats(node_id: str, probes: list[str], moments: list[datetime]) -> list[dict]:
    beats = []
    for i, moment in enumerate(moments):
        results = []
        for k, probe in enumerate(probes):
            dead = (i + k) % 9 == 0
            results.append({"probe_id": probe, "latency_ms": None if dead else 10.0 + i % 7,
                            "packet_loss_rate": 100.0 if dead else (i % 4) * 2.5,
                            "jitter_ms": None if dead else 0.5 + i % 3,
                            "latency_median_ms": None if dead or i % 5 == 0 else 9.75 + i % 7,
                            "latency_p95_ms": None if dead else 13.125 + i % 7})
        beats.append({"node_id": node_id, "timestamp": iso(moment), "latency_ms": 10.0,
                      "packet_loss_rate": 0.0, "jitter_ms": 1.0, "results": results})
    return beats


def test_chart_columns_hold_the_apis_points_at_1m_and_1h(pg_app):
    ctx = setup_node(pg_app, probe_count=2)
    probes = ctx["probe_ids"]
    now = datetime.now(UTC).replace(microsecond=0)
    # every 13 minutes over 30 hours (stored minutes and rollups), and the live hour
    moments = [now - timedelta(minutes=m) for m in range(30 * 60, 0, -13)]
    beats = _heartbeats(ctx["node_id"], probes, moments)
    for chunk in range(0, len(beats), 100):
        answer = ctx["client"].post(BATCH, json={"heartbeats": beats[chunk:chunk + 100]},
                                    headers=ctx["node_headers"])
        assert answer.status_code == 200, answer.get_json()
    with pg_app.app_context():
        flush_pending()
        aggregate_pending_minutes()
        assert db.session.query(Metric).filter(Metric.is_aggregated.is_(True)).count() > 200
        assert db.session.query(MetricRollup).count() >= 50  # hours before the live one
        db.session.remove()
    for span, resolution in ((timedelta(hours=24), "1m"), (timedelta(days=7), "1h")):
        start, end = now - span, now
        with pg_app.app_context():
            columns = chart_columns(ctx["node_id"], probes, start, end, datetime.now(UTC),
                                    resolution)
            db.session.remove()
        for probe in probes:
            points = ctx["client"].get(
                f"/api/v1/nodes/{ctx['node_id']}/metrics?probe_id={probe}"
                f"&resolution={resolution}&from={iso(start)}&to={iso(end)}",
                headers=ctx["operator_headers"]).get_json()["points"]
            assert len(points) > {"1m": 100, "1h": 20}[resolution]
            got = columns[probe]
            assert got["ts_ms"] == [
                int(datetime.fromisoformat(p["timestamp"].replace("Z", "+00:00")).timestamp()
                    * 1000) for p in points]
            for field in CHART_FIELDS:
                assert got[field] == [p[field] for p in points], (resolution, field)
            if resolution == "1m":  # dead runs: no latency (never 0), loss 100
                assert None in got["latency_ms"] and 100.0 in got["packet_loss_rate"]
            else:  # hours mixing dead and live runs: loss between, latency over the live
                assert any(10 < loss < 100 for loss in got["packet_loss_rate"])
