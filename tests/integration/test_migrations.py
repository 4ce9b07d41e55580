"""Migrations against a real PostgreSQL (and SQLite): one head, upgrade from empty,
downgrade to base, and the constraints, cascades, trigger and indexes the database itself
enforces (SPEC §4)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import downgrade, upgrade

from app import MIGRATIONS_DIR
from app.config import normalize_database_url
from app.extensions import not_a_partition
from tests.conftest import make_app

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FLASK = str(Path(sys.executable).with_name("flask"))
TABLES = {"users", "api_tokens", "nodes", "enrollment_tokens", "probes", "metrics",
          "drift_instances", "drift_expected", "metric_rollups_hourly", "audit_log",
          "metric_blocks",  # chart points packed a period to a row (derived)
          # alerting (SPEC §11)
          "alert_rules", "alerts", "alert_events", "notification_channels",
          "notification_outbox", "silences"}
INDEXES = {
    "idx_probes_node_id": "probes", "idx_probes_type": "probes",
    "idx_metrics_node_timestamp": "metrics", "idx_metrics_probe_timestamp": "metrics",
    "idx_metrics_timestamp": "metrics", "idx_metrics_aggregated": "metrics",
}


@pytest.fixture
def pg_url(pg_server):
    """An empty PostgreSQL database of this test's own."""
    return pg_server.create_database("mig_" + uuid.uuid4().hex[:12])


def migrate_fresh(pg_server) -> sa.Engine:
    """An engine on a new PostgreSQL database upgraded to head."""
    url = pg_server.create_database("mig_" + uuid.uuid4().hex[:12])
    app = make_app(url)
    with app.app_context():
        upgrade()
        app.extensions["sqlalchemy"].engines[None].dispose()
    return sa.create_engine(normalize_database_url(url))


@pytest.fixture
def migrated(pg_server):
    """A database of this test's own, at head (for tests that change the schema)."""
    engine = migrate_fresh(pg_server)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def shared_db(pg_server):
    """One database at head for the tests that only write rows: CREATE DATABASE costs
    ~0.3 s here, so each of those tests runs in a transaction that is rolled back."""
    engine = migrate_fresh(pg_server)
    yield engine
    engine.dispose()


@pytest.fixture
def conn(shared_db):
    """A connection inside a transaction rolled back after the test (savepoints within)."""
    with shared_db.connect() as connection:
        outer = connection.begin()
        yield connection
        outer.rollback()


@contextmanager
def refused(conn):
    """Expect PostgreSQL to refuse what the block writes (IntegrityError), in a savepoint."""
    with pytest.raises(sa.exc.IntegrityError) as caught, conn.begin_nested():
        yield caught


def app_tables(engine) -> set[str]:
    """The tables the models declare: not alembic's, not the partitions of `metrics`."""
    return {name for name in sa.inspect(engine).get_table_names()
            if name != "alembic_version" and not_a_partition(None, name, "table", True, None)}


def run_flask_db(database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "PULSE_ENV")}
    env.update(DATABASE_URL=database_url, PULSE_EMBEDDED_SCHEDULER="0")
    return subprocess.run([FLASK, "--app", "wsgi", "db", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


# -- revisions --------------------------------------------------------------------------------

def test_single_head():
    script = ScriptDirectory(MIGRATIONS_DIR)
    heads = script.get_heads()
    assert len(heads) == 1, heads
    # Every revision reaches base through one line of history.
    revisions = list(script.walk_revisions())
    assert revisions[-1].down_revision is None
    assert sum(1 for r in revisions if r.down_revision is None) == 1


# -- upgrade / downgrade ----------------------------------------------------------------------

def test_flask_db_upgrade_on_empty_postgresql(pg_url):
    result = run_flask_db(pg_url, "upgrade")
    assert result.returncode == 0, result.stderr
    engine = sa.create_engine(normalize_database_url(pg_url))
    try:
        assert app_tables(engine) == TABLES
        with engine.connect() as conn:
            head = ScriptDirectory(MIGRATIONS_DIR).get_current_head()
            assert conn.scalar(sa.text("SELECT version_num FROM alembic_version")) == head
    finally:
        engine.dispose()


def test_flask_db_upgrade_on_empty_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = run_flask_db(url, "upgrade")
    assert result.returncode == 0, result.stderr
    engine = sa.create_engine(url)
    try:
        assert app_tables(engine) == TABLES
        assert set(INDEXES) <= {ix["name"] for table in ("probes", "metrics")
                                for ix in sa.inspect(engine).get_indexes(table)}
    finally:
        engine.dispose()


def test_upgrade_at_head_is_a_no_op(migrated):
    before = app_tables(migrated)
    app = make_app(migrated.url.render_as_string(hide_password=False))
    runner = app.test_cli_runner()
    result = runner.invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        app.extensions["sqlalchemy"].engines[None].dispose()
    assert app_tables(migrated) == before


def test_downgrade_to_base_on_postgresql(migrated):
    assert app_tables(migrated) == TABLES
    app = make_app(migrated.url.render_as_string(hide_password=False))
    with app.app_context():
        downgrade(revision="base")
        app.extensions["sqlalchemy"].engines[None].dispose()
    assert app_tables(migrated) == set()
    with migrated.connect() as conn:
        assert conn.scalar(sa.text(
            "SELECT count(*) FROM pg_proc WHERE proname = 'set_updated_at'")) == 0
    # ... and back up again: the migration is repeatable.
    with app.app_context():
        upgrade()
        app.extensions["sqlalchemy"].engines[None].dispose()
    assert app_tables(migrated) == TABLES


def test_downgrade_to_base_on_sqlite(tmp_path):
    app = make_app(f"sqlite:///{tmp_path / 'down.db'}")
    with app.app_context():
        upgrade()
        downgrade(revision="base")
        engine = app.extensions["sqlalchemy"].engines[None]
        assert app_tables(engine) == set()
        engine.dispose()


def test_models_match_the_migrations(shared_db):
    """What the ORM declares is what the migration built (no autogenerate diff)."""
    from app.extensions import db

    with shared_db.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True,
                                                         "include_object": not_a_partition})
        diff = compare_metadata(context, db.metadata)
    assert diff == []


# -- what PostgreSQL itself enforces ----------------------------------------------------------

def insert_node(conn, name: str | None = None) -> uuid.UUID:
    node_id = uuid.uuid4()
    name = name or f"n-{node_id.hex[:10]}"
    conn.execute(sa.text(
        "INSERT INTO nodes (id, name, labels, token_hash, metadata, created_at, updated_at) "
        "VALUES (:id, :name, '{}', :hash, '{}', now(), now())"),
        {"id": node_id, "name": name, "hash": uuid.uuid4().hex * 2})
    return node_id


PROBE_DEFAULTS = {"type": "TCP", "target": "192.0.2.1", "port": 80, "interval_seconds": 60,
                  "count": 10, "timeout_seconds": 5, "source": "api"}


def insert_probe(conn, node_id: uuid.UUID, **overrides) -> uuid.UUID:
    probe_id = uuid.uuid4()
    values = {**PROBE_DEFAULTS, **overrides, "id": probe_id, "node_id": node_id}
    conn.execute(sa.text(
        "INSERT INTO probes (id, node_id, type, target, port, interval_seconds, count, "
        "timeout_seconds, source, created_at, updated_at) VALUES (:id, :node_id, :type, "
        ":target, :port, :interval_seconds, :count, :timeout_seconds, :source, now(), now())"),
        values)
    return probe_id


def insert_metric(conn, node_id, probe_id, loss="0", minute: int = 0) -> None:
    conn.execute(sa.text(
        "INSERT INTO metrics (node_id, probe_id, timestamp, latency_ms, packet_loss_rate, "
        "jitter_ms, created_at) VALUES (:node_id, :probe_id, "
        "timestamp with time zone '2026-01-30 12:00:00Z' + make_interval(mins => :minute), "
        "12.30, :loss, 0.80, now())"),
        {"node_id": node_id, "probe_id": probe_id, "loss": Decimal(loss), "minute": minute})


@pytest.mark.parametrize("overrides", [
    {"port": 0}, {"port": 70000}, {"interval_seconds": 30}, {"interval_seconds": 301},
    {"count": 0}, {"count": 101}, {"timeout_seconds": 0}, {"timeout_seconds": 31},
    {"type": "ICMP"}, {"type": "tcp"}, {"source": "manual"},
], ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_check_constraints_refuse_bad_rows(conn, overrides):
    node_id = insert_node(conn)
    with refused(conn) as caught:
        insert_probe(conn, node_id, **overrides)
    assert "check constraint" in str(caught.value.orig).lower()


@pytest.mark.parametrize("overrides", [
    {"port": 1}, {"port": 65535}, {"interval_seconds": 60}, {"interval_seconds": 300},
    {"count": 1}, {"count": 100}, {"timeout_seconds": 1}, {"timeout_seconds": 30},
    {"type": "UDP"}, {"source": "beacon"},
], ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_check_constraints_accept_the_bounds(conn, overrides):
    probe_id = insert_probe(conn, insert_node(conn), **overrides)
    assert count(conn, "probes", id=probe_id) == 1


def test_unique_node_type_target_port(conn):
    node_id = insert_node(conn)
    insert_probe(conn, node_id)
    with refused(conn):
        insert_probe(conn, node_id)


def test_unique_node_name(conn):
    insert_node(conn, "twin")
    with refused(conn):
        insert_node(conn, "twin")


def test_unique_metric_per_probe_timestamp_and_kind(conn):
    node_id = insert_node(conn)
    probe_id = insert_probe(conn, node_id)
    insert_metric(conn, node_id, probe_id)
    with refused(conn):
        insert_metric(conn, node_id, probe_id)


def test_metric_needs_an_existing_probe(conn):
    with refused(conn):
        insert_metric(conn, insert_node(conn), uuid.uuid4())


def count(conn, table: str, **where) -> int:
    clause = " AND ".join(f"{k} = :{k}" for k in where) or "TRUE"
    return conn.scalar(sa.text(f"SELECT count(*) FROM {table} WHERE {clause}"), where)


def test_deleting_a_node_cascades_to_probes_and_metrics(conn):
    doomed, kept = insert_node(conn, "doomed"), insert_node(conn, "kept")
    for node_id in (doomed, kept):
        for port in (80, 443):
            probe_id = insert_probe(conn, node_id, port=port)
            for minute in range(3):
                insert_metric(conn, node_id, probe_id, minute=minute)
    conn.execute(sa.text("DELETE FROM nodes WHERE id = :id"), {"id": doomed})
    assert count(conn, "probes", node_id=doomed) == 0
    assert count(conn, "metrics", node_id=doomed) == 0
    assert count(conn, "probes", node_id=kept) == 2
    assert count(conn, "metrics", node_id=kept) == 6


def test_deleting_a_probe_cascades_to_its_metrics(conn):
    node_id = insert_node(conn)
    doomed, kept = insert_probe(conn, node_id, port=80), insert_probe(conn, node_id, port=81)
    insert_metric(conn, node_id, doomed)
    insert_metric(conn, node_id, kept)
    conn.execute(sa.text("DELETE FROM probes WHERE id = :id"), {"id": doomed})
    assert count(conn, "metrics", probe_id=doomed) == 0
    assert count(conn, "metrics", probe_id=kept) == 1


@pytest.mark.parametrize(("table", "change"), [
    ("probes", "count = 5"), ("nodes", "region = 'eu-west'"),
])
def test_updated_at_trigger(conn, table, change):
    node_id = insert_node(conn)
    row_id = insert_probe(conn, node_id) if table == "probes" else node_id
    # Backdate with the trigger off (it would set updated_at on this UPDATE too) ...
    conn.execute(sa.text(f"ALTER TABLE {table} DISABLE TRIGGER trg_{table}_updated_at"))
    conn.execute(sa.text(f"UPDATE {table} SET updated_at = '2000-01-01Z', "
                         "created_at = '2000-01-01Z' WHERE id = :id"), {"id": row_id})
    conn.execute(sa.text(f"ALTER TABLE {table} ENABLE TRIGGER trg_{table}_updated_at"))
    assert conn.scalar(sa.text(f"SELECT updated_at FROM {table} WHERE id = :id"),
                       {"id": row_id}).year == 2000
    # ... then a plain SQL UPDATE that does not mention updated_at moves it.
    conn.execute(sa.text(f"UPDATE {table} SET {change} WHERE id = :id"), {"id": row_id})
    updated, created, now = conn.execute(sa.text(
        f"SELECT updated_at, created_at, now() FROM {table} WHERE id = :id"),
        {"id": row_id}).one()
    assert updated == now  # the trigger's now(): this transaction's time
    assert created.year == 2000


def test_the_six_named_indexes_exist(conn):
    rows = dict(conn.execute(sa.text(
        "SELECT indexname, tablename FROM pg_indexes WHERE schemaname = 'public'")).all())
    defs = dict(conn.execute(sa.text(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'")).all())
    assert {name: rows.get(name) for name in INDEXES} == INDEXES
    assert "(node_id, \"timestamp\" DESC)" in defs["idx_metrics_node_timestamp"]
    assert "(probe_id, \"timestamp\" DESC)" in defs["idx_metrics_probe_timestamp"]
    assert "(is_aggregated, \"timestamp\" DESC)" in defs["idx_metrics_aggregated"]
    assert "UNIQUE" in defs["uq_metrics_probe_ts_agg"]
    assert "UNIQUE" in defs["uq_probes_node_type_target_port"]


@pytest.mark.parametrize("loss", ["100", "100.0000", "0", "0.0001", "33.3333", "99.9999"])
def test_packet_loss_rate_holds_a_percentage(conn, loss):
    node_id = insert_node(conn)
    probe_id = insert_probe(conn, node_id)
    insert_metric(conn, node_id, probe_id, loss=loss)
    stored = conn.scalar(sa.text("SELECT packet_loss_rate FROM metrics WHERE probe_id = :p"),
                         {"p": probe_id})
    assert stored == Decimal(loss)


def test_packet_loss_rate_over_100_does_not_fit_silently(conn):
    """numeric(7,4) holds up to 999.9999; the API refuses > 100 — the column only has to
    hold 100 exactly, which the seed's numeric(5,4) could not."""
    node_id = insert_node(conn)
    probe_id = insert_probe(conn, node_id)
    with pytest.raises(sa.exc.DataError), conn.begin_nested():
        insert_metric(conn, node_id, probe_id, loss="1000")


def test_metric_column_types(conn):
    columns = {row[0]: row[1:] for row in conn.execute(sa.text(
        "SELECT column_name, data_type, numeric_precision, numeric_scale, is_nullable "
        "FROM information_schema.columns WHERE table_name = 'metrics'"))}
    assert columns["id"][0] == "bigint"
    assert columns["timestamp"][0] == "timestamp with time zone"
    assert columns["packet_loss_rate"][:3] == ("numeric", 7, 4)
    assert columns["latency_ms"][:3] == ("numeric", 10, 2)
    assert columns["jitter_ms"][:3] == ("numeric", 10, 2)
    assert columns["is_aggregated"][0] == "boolean" and columns["is_aggregated"][3] == "NO"
    for name in ("node_id", "probe_id", "timestamp"):
        assert columns[name][3] == "NO", name
