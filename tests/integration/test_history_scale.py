"""History at scale on real PostgreSQL (issue 13, SPEC §12): partitions ahead, rows outside
every partition, retention by partition, rollups re-rolled by late points, cascades, and
the in-place conversion of an unpartitioned table."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from flask_migrate import upgrade

from app.config import normalize_database_url
from app.extensions import db
from app.history import partitions
from app.history.aggregation import aggregate_minute, aggregate_pending_minutes
from app.history.flush import flush_pending
from app.history.flush_writers import write_rows
from app.history.pending import PendingRow
from app.history.retention import maintain_partitions, prune
from app.history.rollups import roll_up_hour
from app.models import MetricRollup
from tests.conftest import make_app
from tests.integration.helpers import iso, setup_node

pytestmark = pytest.mark.integration
BATCH = "/api/v1/beacon/heartbeats"


def partition_of(app, probe_id: str) -> list[str]:
    """The partition each of a probe's rows lives in, oldest first."""
    with app.app_context():
        rows = db.session.execute(sa.text(
            "SELECT tableoid::regclass::text FROM metrics WHERE probe_id = :p "
            "ORDER BY timestamp"), {"p": probe_id}).scalars().all()
        db.session.remove()
        return rows


def table_names(app) -> set[str]:
    with app.app_context():
        names = set(sa.inspect(db.engine).get_table_names())
        db.session.remove()
        return names


def test_partitions_exist_ahead_after_upgrade(pg_app):
    today = datetime.now(UTC).date()
    names = table_names(pg_app)
    for ahead in range(4):
        assert partitions.raw_name(today + timedelta(days=ahead)) in names
    assert partitions.agg_name(today.replace(day=1)) in names
    assert {"metrics_raw_default", "metrics_agg_default"} <= names
    with pg_app.app_context():
        assert maintain_partitions() == {"created": 0, "moved": 0}  # idempotent


def test_rows_outside_every_partition_land_in_the_default_and_move_when_it_comes(pg_app):
    ctx = setup_node(pg_app, probe_count=1)
    [probe] = ctx["probe_ids"]
    now = datetime.now(UTC)
    old, ahead = now - timedelta(days=730), now + timedelta(days=10)
    with pg_app.app_context():
        rows = [PendingRow(ctx["node_id"], probe, int(t.timestamp() * 1000), 12.0, 0.0, 1.0)
                for t in (old, ahead)]
        assert write_rows(rows) == 2   # the flush's own COPY path: no error
    assert partition_of(pg_app, probe) == ["metrics_raw_default", "metrics_raw_default"]
    with pg_app.app_context():
        created = maintain_partitions(now + timedelta(days=8))  # the 10-days-ahead day comes
        assert created["moved"] == 1 and created["created"] >= 8
    day = (ahead.astimezone(UTC)).date()
    assert partition_of(pg_app, probe) == ["metrics_raw_default", partitions.raw_name(day)]


def test_retention_drops_expired_raw_partitions_keeps_aggregates_and_rollups(pg_app):
    ctx = setup_node(pg_app, probe_count=1)
    [probe] = ctx["probe_ids"]
    now = datetime.now(UTC)
    ten_days_ago = (now - timedelta(days=10)).replace(minute=5, second=0, microsecond=0)
    with pg_app.app_context():
        maintain_partitions(now - timedelta(days=10))  # as if it had run back then
        write_rows([PendingRow(ctx["node_id"], probe,
                               int((ten_days_ago + timedelta(seconds=s)).timestamp() * 1000),
                               20.0, 0.0, 1.0) for s in (10, 20)])
        # rows older than the raw retention are not caught up by the scan: computed here
        aggregate_minute(uuid.UUID(probe), ten_days_ago)
        roll_up_hour(uuid.UUID(probe), ten_days_ago.replace(minute=0))
        db.session.commit()
        assert db.session.query(MetricRollup).count() == 1
        raw_partition = partitions.raw_name(ten_days_ago.date())
        assert raw_partition in table_names(pg_app)
        db.session.remove()
        result = prune(now)
        assert result["partitions_dropped"] >= 1
    names = table_names(pg_app)
    assert raw_partition not in names
    assert partitions.agg_name(ten_days_ago.date().replace(day=1)) in names
    with pg_app.app_context():
        kinds = db.session.execute(sa.text(
            "SELECT is_aggregated, count(*) FROM metrics WHERE probe_id = :p GROUP BY 1"),
            {"p": probe}).all()
        assert dict(kinds) == {True: 1}   # the raw rows went with their day
        assert db.session.query(MetricRollup).count() == 1
        db.session.remove()


def test_retention_detaches_before_it_drops_and_finishes_an_interrupted_drop(pg_app,
                                                                            monkeypatch):
    now = datetime.now(UTC)
    with pg_app.app_context():
        maintain_partitions(now - timedelta(days=12))
        expired = [partitions.raw_name((now - timedelta(days=d)).date()) for d in (11, 10)]
        assert set(expired) <= table_names(pg_app)
        statements = []
        real_ddl = partitions._ddl

        def crash_on_the_first_drop(statement):
            class Recorder:
                def execute(self, clause):
                    statements.append(str(clause))

            statement(Recorder())
            if statements[-1].startswith("DROP") and len(statements) == 2:
                raise RuntimeError("worker killed between the detach and the drop")
            real_ddl(statement)

        monkeypatch.setattr(partitions, "_ddl", crash_on_the_first_drop)
        with pytest.raises(RuntimeError):
            prune(now)
        first = statements[0].rsplit(" ", 1)[1]
        # a raw day or, on some dates (an aggregate month past its 90 days), a month first
        parent = "metrics_raw" if first.startswith("metrics_raw_") else "metrics_agg"
        assert statements == [f"ALTER TABLE {parent} DETACH PARTITION {first}",
                              f"DROP TABLE {first}"]
        assert partitions.detached_leftovers() == [first]  # detached, not dropped
        monkeypatch.setattr(partitions, "_ddl", real_ddl)
        assert prune(now)["partitions_dropped"] >= 2
        assert partitions.detached_leftovers() == []
        db.session.remove()
    assert not set(expired) & table_names(pg_app)


def test_a_late_point_reaggregates_its_minute_and_rerolls_its_hour(pg_app):
    ctx = setup_node(pg_app, probe_count=1)
    [probe] = ctx["probe_ids"]
    client, headers = ctx["client"], ctx["node_headers"]
    hour = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)

    def send(minute: int, latency: float) -> None:
        item = {"node_id": ctx["node_id"], "timestamp": iso(hour + timedelta(minutes=minute)),
                "latency_ms": latency, "packet_loss_rate": 0.0, "jitter_ms": 1.0,
                "results": [{"probe_id": probe, "latency_ms": latency,
                             "packet_loss_rate": 0.0, "jitter_ms": 1.0}]}
        assert client.post(BATCH, json={"heartbeats": [item]},
                           headers=headers).get_json()["accepted"] == 1
        with pg_app.app_context():
            flush_pending()
            aggregate_pending_minutes()
            db.session.remove()

    send(10, 10.0)
    send(40, 30.0)
    with pg_app.app_context():
        rollup = db.session.query(MetricRollup).one()
        assert (rollup.sample_count, float(rollup.latency_ms)) == (2, 20.0)
        db.session.remove()
    send(10, 10.0)   # the same point again: nothing changes
    send(50, 50.0)   # a late point: its minute aggregated, its hour rolled up again
    with pg_app.app_context():
        rollup = db.session.query(MetricRollup).one()
        assert (rollup.sample_count, float(rollup.latency_ms)) == (3, 30.0)
        db.session.remove()
    answer = client.get(
        f"/api/v1/nodes/{ctx['node_id']}/metrics?probe_id={probe}&resolution=1h"
        f"&from={iso(hour - timedelta(hours=1))}&to={iso(hour + timedelta(hours=1))}",
        headers=ctx["operator_headers"]).get_json()
    [point] = answer["points"]
    assert (point["latency_ms"], point["sample_count"]) == (30.0, 3)


def test_deleting_a_probe_removes_its_rows_in_every_partition(pg_app):
    ctx = setup_node(pg_app, probe_count=1)
    [probe] = ctx["probe_ids"]
    now = datetime.now(UTC)
    with pg_app.app_context():
        write_rows([PendingRow(ctx["node_id"], probe, int(t.timestamp() * 1000), 5.0, 0.0, 0.5)
                    for t in (now - timedelta(hours=2), now - timedelta(days=400))])
        aggregate_pending_minutes(now)
        db.session.commit()
        db.session.remove()
    assert len(set(partition_of(pg_app, probe))) >= 3   # a day, a month, a default
    response = ctx["client"].delete(f"/api/v1/probes/{probe}?confirm=true",
                                    headers=ctx["operator_headers"])
    assert response.status_code == 204
    assert partition_of(pg_app, probe) == []
    with pg_app.app_context():
        assert db.session.query(MetricRollup).filter_by(probe_id=uuid.UUID(probe)).count() == 0
        db.session.remove()


def test_partition_ddl_waits_for_a_busy_lock_and_retries(pg_app):
    """A long transaction holding the table: maintenance times out, retries, succeeds."""
    with pg_app.app_context():
        holder = db.engine.connect()
        transaction = holder.begin()
        holder.execute(sa.text("LOCK TABLE metrics_raw IN ACCESS EXCLUSIVE MODE"))
        releaser = threading.Timer(3.0, transaction.rollback)
        releaser.start()
        try:
            created = maintain_partitions(datetime.now(UTC) + timedelta(days=30))
        finally:
            releaser.join()
            holder.close()
        assert created["created"] >= 1
        db.session.remove()


def test_the_migration_converts_a_table_with_rows_keeping_every_one(pg_server):
    url = pg_server.create_database("conv_" + uuid.uuid4().hex[:10])
    app = make_app(url)
    with app.app_context():
        upgrade(revision="0003_audit_log")  # the last revision before the conversion
    ctx = setup_node(app, probe_count=2)
    engine = sa.create_engine(normalize_database_url(url))
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        with engine.begin() as conn:
            for days in (0, 1, 3, 40):
                for probe in ctx["probe_ids"]:
                    for aggregated in (False, True):
                        conn.execute(sa.text(
                            "INSERT INTO metrics (node_id, probe_id, timestamp, latency_ms, "
                            "packet_loss_rate, jitter_ms, is_aggregated, sample_count, "
                            "created_at) VALUES (:n, :p, :t, :lat, 0, 0.5, :agg, :count, now())"),
                            {"n": ctx["node_id"], "p": probe, "t": now - timedelta(days=days),
                             "lat": 10 + days, "agg": aggregated,
                             "count": 1 if aggregated else None})
            before = conn.execute(sa.text(
                "SELECT id, probe_id, timestamp, latency_ms, is_aggregated FROM metrics "
                "ORDER BY id")).all()
        with app.app_context():
            upgrade()
            db.engine.dispose()
        with engine.begin() as conn:
            after = conn.execute(sa.text(
                "SELECT id, probe_id, timestamp, latency_ms, is_aggregated FROM metrics "
                "ORDER BY id")).all()
            assert after == before and len(after) == 16
            places = set(conn.execute(sa.text(
                "SELECT tableoid::regclass::text FROM metrics")).scalars())
            assert "metrics_raw_default" not in places and "metrics_agg_default" not in places
            assert partitions.raw_name((now - timedelta(days=3)).date()) in places
            new_id = conn.execute(sa.text(
                "INSERT INTO metrics (node_id, probe_id, timestamp, packet_loss_rate, "
                "is_aggregated, created_at) VALUES (:n, :p, now(), 0, false, now()) "
                "RETURNING id"), {"n": ctx["node_id"], "p": ctx["probe_ids"][0]}).scalar()
            assert new_id > max(row.id for row in before)   # the sequence carried on
    finally:
        engine.dispose()
        with app.app_context():
            db.engine.dispose()


def test_queries_at_1m_and_1h_answer_the_same_from_rollups_as_from_minutes(pg_app):
    ctx = setup_node(pg_app, probe_count=1)
    [probe] = ctx["probe_ids"]
    start = (datetime.now(UTC) - timedelta(hours=6)).replace(minute=0, second=0, microsecond=0)
    items = [{"node_id": ctx["node_id"],
              "timestamp": iso(start + timedelta(minutes=7 * i, seconds=3)),
              "latency_ms": 10.0, "packet_loss_rate": 0.0, "jitter_ms": 1.0,
              "results": [{"probe_id": probe, "latency_ms": 10.0 + i % 5,
                           "packet_loss_rate": (i % 4) * 10.0, "jitter_ms": 1.0 + i % 3,
                           "latency_median_ms": 9.5 + i % 5, "latency_p95_ms": 12.0 + i % 5}]}
             for i in range(40)]
    assert ctx["client"].post(BATCH, json={"heartbeats": items},
                              headers=ctx["node_headers"]).get_json()["accepted"] == 40
    with pg_app.app_context():
        flush_pending()
        aggregate_pending_minutes()
        assert db.session.query(MetricRollup).count() >= 4
        db.session.remove()
    url = (f"/api/v1/nodes/{ctx['node_id']}/metrics?probe_id={probe}&resolution=1h"
           f"&from={iso(start)}&to={iso(start + timedelta(hours=5))}")
    from_rollups = ctx["client"].get(url, headers=ctx["operator_headers"]).get_json()["points"]
    with pg_app.app_context():
        db.session.query(MetricRollup).delete()
        db.session.commit()
        db.session.remove()
    from_minutes = ctx["client"].get(url, headers=ctx["operator_headers"]).get_json()["points"]
    keys = ("timestamp", "latency_ms", "packet_loss_rate", "jitter_ms", "latency_min_ms",
            "latency_max_ms", "latency_median_ms", "latency_p95_ms", "sample_count")
    assert [{k: p[k] for k in keys} for p in from_rollups] == [
        {k: p[k] for k in keys} for p in from_minutes]
    assert len(from_rollups) == 5


def test_the_sla_report_reads_the_rollups_on_postgresql(pg_app):
    ctx = setup_node(pg_app, probe_count=1)
    [probe] = ctx["probe_ids"]
    start = (datetime.now(UTC) - timedelta(hours=5)).replace(minute=0, second=0, microsecond=0)
    items = [{"node_id": ctx["node_id"], "timestamp": iso(start + timedelta(minutes=m)),
              "latency_ms": 10.0, "packet_loss_rate": 0.0, "jitter_ms": 1.0,
              "results": [{"probe_id": probe, "latency_ms": 10.0 + m % 3,
                           "packet_loss_rate": 100.0 if m % 20 == 0 else 0.0,
                           "jitter_ms": 1.0}]} for m in range(120)]
    assert ctx["client"].post(BATCH, json={"heartbeats": items},
                              headers=ctx["node_headers"]).get_json()["accepted"] == 120
    with pg_app.app_context():
        flush_pending()
        aggregate_pending_minutes()
        db.session.remove()
    answer = ctx["client"].get(
        f"/api/v1/reports/sla?node_id={ctx['node_id']}&from={iso(start)}"
        f"&to={iso(start + timedelta(hours=4))}", headers=ctx["operator_headers"]).get_json()
    [row] = answer["data"]
    assert (row["expected_runs"], row["runs_with_data"], row["availability_pct"]) == (
        240, 120, 95.0)
    assert row["no_data_pct"] == 50.0 and row["loss_mean_pct"] == 5.0
    # 114 minutes received, a third each at 10, 11 and 12 ms (the dead ones have none)
    assert (row["latency_p50_ms"], row["latency_p95_ms"]) == (11.0, 12.0)


def test_batched_aggregation_and_rollups_equal_the_one_by_one_path(pg_app):
    """PostgreSQL aggregates many minutes (and hours) per statement; the figures are those
    of the per-minute statement the SQLite path and the tests of its values use."""
    from app.history.aggregation import aggregate_minutes
    from app.history.rollups import roll_up_hours

    ctx = setup_node(pg_app, probe_count=2)
    hour = (datetime.now(UTC) - timedelta(hours=4)).replace(minute=0, second=0, microsecond=0)
    items = [{"node_id": ctx["node_id"], "timestamp": iso(hour + timedelta(seconds=37 * i)),
              "latency_ms": 10.0, "packet_loss_rate": 0.0, "jitter_ms": 1.0,
              "results": [{"probe_id": p, "latency_ms": 10.0 + (i * 7 + j) % 13,
                           "packet_loss_rate": 100.0 if i % 9 == 0 else (i % 4) * 10.0,
                           "jitter_ms": 0.5 + i % 3, "latency_median_ms": 9.0 + i % 5,
                           "latency_p95_ms": 15.0 + i % 4, "sent": 10, "received": 9}
                          for j, p in enumerate(ctx["probe_ids"])]} for i in range(150)]
    assert ctx["client"].post(BATCH, json={"heartbeats": items},
                              headers=ctx["node_headers"]).get_json()["accepted"] == 300
    columns = ("probe_id", "timestamp", "latency_ms", "packet_loss_rate", "jitter_ms",
               "latency_min_ms", "latency_median_ms", "latency_p95_ms", "latency_max_ms",
               "jitter_max_ms", "packet_loss_max", "sent", "received", "sample_count")

    def snapshot():
        minutes = db.session.execute(sa.text(
            f"SELECT {', '.join(columns)} FROM metrics WHERE is_aggregated "
            "ORDER BY probe_id, timestamp")).all()
        hours = db.session.execute(sa.text(
            "SELECT probe_id, hour, latency_ms, latency_min_ms, latency_max_ms, "
            "latency_median_ms, latency_p95_ms, packet_loss_rate, packet_loss_max, jitter_ms, "
            "jitter_max_ms, sample_count, latency_sample_count, runs_available "
            "FROM metric_rollups_hourly ORDER BY probe_id, hour")).all()
        return minutes, hours

    with pg_app.app_context():
        flush_pending()
        pairs = sorted({(uuid.UUID(p), int((hour + timedelta(seconds=37 * i)).timestamp()
                                           * 1000) // 60_000 * 60_000)
                        for i in range(150) for p in ctx["probe_ids"]})
        hours = sorted({(p, m - m % 3_600_000) for p, m in pairs})
        aggregate_minutes(pairs)
        roll_up_hours(hours)
        batched = snapshot()
        db.session.execute(sa.text("DELETE FROM metrics WHERE is_aggregated"))
        db.session.execute(sa.text("DELETE FROM metric_rollups_hourly"))
        db.session.commit()
        for probe, minute in pairs:
            aggregate_minute(probe, datetime.fromtimestamp(minute / 1000, UTC))
        for probe, hour_ms in hours:
            roll_up_hour(probe, datetime.fromtimestamp(hour_ms / 1000, UTC))
        db.session.commit()
        one_by_one = snapshot()
        db.session.remove()
    assert len(batched[0]) == len(pairs) > 150 and len(batched[1]) == len(hours) >= 4
    assert batched == one_by_one
