"""The node page's chart columns on real PostgreSQL hold exactly the points the API answers:
the stored minutes and rollups are read there as rows of the chart's fields (epoch ms and
probe ids computed in SQL, values rounded in SQL) or, for a finished hour of minutes, as
its packed block; the live tail as points."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.extensions import db
from app.history import blocks
from app.history.aggregation import aggregate_pending_minutes
from app.history.columns import CHART_FIELDS, chart_columns
from app.history.flush import flush_pending
from app.history.queries import hour_of
from app.history.retention import prune
from app.history.rollups import mark_hours_dirty, roll_up_pending_hours
from app.models import Metric, MetricBlock, MetricRollup
from app.timeutil import to_ms
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


def _api_points(ctx, probe: str, start: datetime, end: datetime) -> list[dict]:
    return ctx["client"].get(
        f"/api/v1/nodes/{ctx['node_id']}/metrics?probe_id={probe}&resolution=1m"
        f"&from={iso(start)}&to={iso(end)}", headers=ctx["operator_headers"]).get_json()["points"]


def test_finished_hours_are_read_from_their_packed_blocks_until_a_minute_changes(pg_app):
    ctx = setup_node(pg_app, probe_count=2)
    probes = ctx["probe_ids"]
    now = datetime.now(UTC).replace(microsecond=0)
    moments = [now - timedelta(minutes=m) for m in range(8 * 60, 0, -3)]
    for chunk in range(0, len(moments), 100):
        beats = _heartbeats(ctx["node_id"], probes, moments[chunk:chunk + 100])
        answer = ctx["client"].post(BATCH, json={"heartbeats": beats},
                                    headers=ctx["node_headers"])
        assert answer.status_code == 200, answer.get_json()
    # a range starting and ending inside stored hours, so blocks are cut at both ends
    start, end = now - timedelta(hours=7, minutes=17), now - timedelta(hours=2, minutes=31)
    hours = (hour_of(end) - hour_of(start)) // timedelta(hours=1) + 1  # 5 or 6, all finished
    with pg_app.app_context():
        flush_pending()
        aggregate_pending_minutes()
        packed = blocks.read(blocks.MINUTES, ctx["node_id"], probes, hour_of(start), hour_of(end))
        assert all(len(packed[p]) == hours for p in probes), packed.keys()
        columns = chart_columns(ctx["node_id"], probes, start, end, datetime.now(UTC), "1m")
        db.session.remove()
    for probe in probes:
        points = _api_points(ctx, probe, start, end)
        assert len(points) > 80 and columns[probe]["ts_ms"][0] >= start.timestamp() * 1000
        for field in CHART_FIELDS:
            assert columns[probe][field] == [p[field] for p in points], field
        assert None in columns[probe]["latency_ms"]  # a dead minute: None, never NaN or 0

    # The packed hours are what the chart read: a row changed behind the roll-up's back (no
    # mark, as nothing in Pulse writes) is not seen until its hour is packed again.
    with pg_app.app_context():
        row = db.session.query(Metric).filter(
            Metric.probe_id == probes[1], Metric.is_aggregated.is_(True),
            Metric.timestamp >= hour_of(start) + timedelta(hours=1),
            Metric.latency_ms.isnot(None)).order_by(Metric.timestamp).first()
        row.latency_ms = 555.55
        db.session.commit()
        unmarked = chart_columns(ctx["node_id"], probes[1:], start, end, datetime.now(UTC), "1m")
        assert unmarked[probes[1]] == columns[probes[1]]
        db.session.remove()

    # A minute of a packed hour changes (a late point): until the hour is rolled up again
    # charts read its rows; then its block holds the new value.
    probe = probes[0]
    changed_hour = hour_of(start) + timedelta(hours=2)
    with pg_app.app_context():
        minute = db.session.query(Metric).filter(
            Metric.probe_id == probe, Metric.is_aggregated.is_(True),
            Metric.timestamp >= changed_hour, Metric.latency_ms.isnot(None)).order_by(
            Metric.timestamp).first()
        minute.latency_ms, minute_ts = 987.65, minute.timestamp
        db.session.commit()
        mark_hours_dirty({(minute.probe_id, to_ms(minute_ts))})
        stale_read = chart_columns(ctx["node_id"], [probe], start, end, datetime.now(UTC), "1m")
        packed = blocks.read(blocks.MINUTES, ctx["node_id"], [probe], hour_of(start), hour_of(end))
        assert to_ms(changed_hour) not in packed[probe] and len(packed[probe]) == hours - 1
        roll_up_pending_hours(datetime.now(UTC))
        packed = blocks.read(blocks.MINUTES, ctx["node_id"], [probe], hour_of(start), hour_of(end))
        assert 987.65 in packed[probe][to_ms(changed_hour)]["latency_ms"]
        # the hour's rollup and its day's block changed with it
        days = blocks.read(blocks.HOURS, ctx["node_id"], [probe], now - timedelta(days=2), now)
        assert days[probe] and to_ms(changed_hour) in [
            ts for day in days[probe].values() for ts in day["ts_ms"]]
        hours_read = chart_columns(ctx["node_id"], [probe], now - timedelta(days=1), now,
                                   datetime.now(UTC), "1h")
        fresh_read = chart_columns(ctx["node_id"], [probe], start, end, datetime.now(UTC), "1m")
        db.session.remove()
    expected = [p["latency_ms"] for p in _api_points(ctx, probe, start, end)]
    assert 987.65 in expected
    assert stale_read[probe]["latency_ms"] == expected == fresh_read[probe]["latency_ms"]
    hourly = ctx["client"].get(
        f"/api/v1/nodes/{ctx['node_id']}/metrics?probe_id={probe}&resolution=1h"
        f"&from={iso(now - timedelta(days=1))}&to={iso(now)}",
        headers=ctx["operator_headers"]).get_json()["points"]
    assert len(hourly) >= 8
    for field in CHART_FIELDS:
        assert hours_read[probe][field] == [p[field] for p in hourly], field

    answer = ctx["client"].delete(f"/api/v1/probes/{probe}?confirm=true",
                                  headers=ctx["operator_headers"])
    assert answer.status_code == 204
    with pg_app.app_context():  # gone with their probe, and kept as long as the raw runs
        assert db.session.query(MetricBlock).filter(MetricBlock.probe_id == probe).count() == 0
        left = db.session.query(MetricBlock).filter(MetricBlock.resolution == "1m").count()
        assert left >= hours
        assert prune(now + timedelta(days=6))["blocks"] == 0
        assert prune(now + timedelta(days=8))["blocks"] == left  # day blocks stay 730 days
        assert {b.resolution for b in db.session.query(MetricBlock)} == {"1h"}
        db.session.remove()


def test_history_pack_packs_what_the_roll_up_would_have(pg_app):
    """History stored before the blocks (an upgraded database) is packed by `flask history
    pack`: the same blocks as the roll-up's, and a second run packs nothing."""
    ctx = setup_node(pg_app, probe_count=2)
    now = datetime.now(UTC).replace(microsecond=0)
    beats = _heartbeats(ctx["node_id"], ctx["probe_ids"],
                        [now - timedelta(minutes=m) for m in range(5 * 60, 0, -4)])
    answer = ctx["client"].post(BATCH, json={"heartbeats": beats}, headers=ctx["node_headers"])
    assert answer.status_code == 200, answer.get_json()

    def packed() -> dict:
        return {(b.probe_id, b.resolution, b.period_start): (b.point_count, bytes(b.latency_ms))
                for b in db.session.query(MetricBlock)}

    with pg_app.app_context():
        flush_pending()
        aggregate_pending_minutes()
        by_roll_up = packed()
        assert {resolution for _p, resolution, _s in by_roll_up} == {"1m", "1h"}
        assert len(by_roll_up) >= 2 * 4 + 2
        db.session.query(MetricBlock).delete()
        db.session.commit()
        db.session.remove()
    runner = pg_app.test_cli_runner()
    result = runner.invoke(args=["history", "pack"])
    assert result.exit_code == 0, result.output
    assert "periods packed" in result.output
    with pg_app.app_context():
        assert packed() == by_roll_up
        db.session.remove()
    again = runner.invoke(args=["history", "pack", "--days", "2"])
    assert again.exit_code == 0 and "1m: 0 periods packed" in again.output, again.output
    assert "1h: 0 periods packed" in again.output
