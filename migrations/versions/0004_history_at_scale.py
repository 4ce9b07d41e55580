"""history at scale: partitioned metrics (PostgreSQL), hourly rollups

Revision ID: 0004
Revises: 0003_audit_log
Create Date: 2026-11-29 16:40:00

On PostgreSQL the existing `metrics` table is converted in place, keeping every row:
rename it, create the partitioned table (list on is_aggregated, range on timestamp) with
the partitions its rows need plus a default under each list partition, copy the rows,
drop the old table. SQLite keeps one table.
"""
from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003_audit_log'
branch_labels = None
depends_on = None

METRIC_COLUMNS = """
    id bigint NOT NULL DEFAULT nextval('metrics_id_seq'),
    node_id uuid NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    probe_id uuid NOT NULL REFERENCES probes (id) ON DELETE CASCADE,
    timestamp timestamptz NOT NULL,
    latency_ms numeric(10,2),
    packet_loss_rate numeric(7,4),
    jitter_ms numeric(10,2),
    is_aggregated boolean NOT NULL DEFAULT false,
    latency_min_ms numeric(10,2),
    latency_max_ms numeric(10,2),
    jitter_max_ms numeric(10,2),
    packet_loss_max numeric(7,4),
    sample_count integer,
    created_at timestamptz NOT NULL,
    latency_median_ms numeric(10,2),
    latency_p95_ms numeric(10,2),
    sent integer,
    received integer,
    error_code varchar(32)
"""
COLUMN_NAMES = ("id, node_id, probe_id, timestamp, latency_ms, packet_loss_rate, jitter_ms, "
                "is_aggregated, latency_min_ms, latency_max_ms, jitter_max_ms, "
                "packet_loss_max, sample_count, created_at, latency_median_ms, "
                "latency_p95_ms, sent, received, error_code")
INDEXES = {
    "idx_metrics_node_timestamp": "(node_id, timestamp DESC)",
    "idx_metrics_probe_timestamp": "(probe_id, timestamp DESC)",
    "idx_metrics_timestamp": "(timestamp)",
    "idx_metrics_aggregated": "(is_aggregated, timestamp DESC)",
}


def _partition_metrics():
    op.execute("ALTER TABLE metrics RENAME TO metrics_unpartitioned")
    for name in INDEXES:
        op.execute(f"ALTER INDEX {name} RENAME TO {name}_old")
    for name in ("pk_metrics", "uq_metrics_probe_ts_agg", "fk_metrics_node_id_nodes",
                 "fk_metrics_probe_id_probes"):
        op.execute(f"ALTER TABLE metrics_unpartitioned RENAME CONSTRAINT {name} TO {name}_old")
    # The id sequence outlives the old table: the new one draws from it.
    op.execute("ALTER SEQUENCE metrics_id_seq OWNED BY NONE")
    op.execute(f"""
        CREATE TABLE metrics ({METRIC_COLUMNS},
            CONSTRAINT pk_metrics PRIMARY KEY (id, is_aggregated, timestamp),
            CONSTRAINT uq_metrics_probe_ts_agg UNIQUE (probe_id, timestamp, is_aggregated)
        ) PARTITION BY LIST (is_aggregated)""")
    op.execute("ALTER TABLE metrics RENAME CONSTRAINT metrics_node_id_fkey "
               "TO fk_metrics_node_id_nodes")
    op.execute("ALTER TABLE metrics RENAME CONSTRAINT metrics_probe_id_fkey "
               "TO fk_metrics_probe_id_probes")
    op.execute("ALTER SEQUENCE metrics_id_seq OWNED BY metrics.id")
    op.execute("CREATE TABLE metrics_raw PARTITION OF metrics FOR VALUES IN (false) "
               "PARTITION BY RANGE (timestamp)")
    op.execute("CREATE TABLE metrics_agg PARTITION OF metrics FOR VALUES IN (true) "
               "PARTITION BY RANGE (timestamp)")
    op.execute("CREATE TABLE metrics_raw_default PARTITION OF metrics_raw DEFAULT")
    op.execute("CREATE TABLE metrics_agg_default PARTITION OF metrics_agg DEFAULT")
    for name, columns in INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON metrics {columns}")
    # The partitions the existing rows need: a day each for raw rows, a month each for
    # aggregates (rows far in the past or future would do in the defaults too, but then
    # retention could not drop them by partition).
    op.execute(r"""
        DO $$
        DECLARE day date; month date;
        BEGIN
            FOR day IN SELECT DISTINCT (timestamp AT TIME ZONE 'UTC')::date
                       FROM metrics_unpartitioned WHERE NOT is_aggregated LOOP
                EXECUTE format('CREATE TABLE metrics_raw_p%s PARTITION OF metrics_raw '
                               'FOR VALUES FROM (%L) TO (%L)', to_char(day, 'YYYYMMDD'),
                               day::timestamp AT TIME ZONE 'UTC',
                               (day + 1)::timestamp AT TIME ZONE 'UTC');
            END LOOP;
            FOR month IN SELECT DISTINCT date_trunc('month', timestamp AT TIME ZONE 'UTC')::date
                         FROM metrics_unpartitioned WHERE is_aggregated LOOP
                EXECUTE format('CREATE TABLE metrics_agg_p%s PARTITION OF metrics_agg '
                               'FOR VALUES FROM (%L) TO (%L)', to_char(month, 'YYYYMM'),
                               month::timestamp AT TIME ZONE 'UTC',
                               (month + interval '1 month')::timestamp AT TIME ZONE 'UTC');
            END LOOP;
        END $$""")
    op.execute(f"INSERT INTO metrics ({COLUMN_NAMES}) "
               f"SELECT {COLUMN_NAMES} FROM metrics_unpartitioned")
    op.execute("DROP TABLE metrics_unpartitioned")


def _create_rollups():
    op.create_table(
        'metric_rollups_hourly',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                  autoincrement=True, nullable=False),
        sa.Column('node_id', sa.Uuid(), nullable=False),
        sa.Column('probe_id', sa.Uuid(), nullable=False),
        sa.Column('hour', sa.DateTime(timezone=True), nullable=False),
        sa.Column('latency_ms', sa.Numeric(precision=10, scale=2), nullable=True),
        sa.Column('latency_min_ms', sa.Numeric(precision=10, scale=2), nullable=True),
        sa.Column('latency_max_ms', sa.Numeric(precision=10, scale=2), nullable=True),
        sa.Column('latency_median_ms', sa.Numeric(precision=10, scale=2), nullable=True),
        sa.Column('latency_p95_ms', sa.Numeric(precision=10, scale=2), nullable=True),
        sa.Column('packet_loss_rate', sa.Numeric(precision=7, scale=4), nullable=True),
        sa.Column('packet_loss_max', sa.Numeric(precision=7, scale=4), nullable=True),
        sa.Column('jitter_ms', sa.Numeric(precision=10, scale=2), nullable=True),
        sa.Column('jitter_max_ms', sa.Numeric(precision=10, scale=2), nullable=True),
        sa.Column('sample_count', sa.Integer(), nullable=False),
        sa.Column('latency_sample_count', sa.Integer(), nullable=False),
        sa.Column('runs_available', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['node_id'], ['nodes.id'],
                                name=op.f('fk_metric_rollups_hourly_node_id_nodes'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['probe_id'], ['probes.id'],
                                name=op.f('fk_metric_rollups_hourly_probe_id_probes'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_metric_rollups_hourly')),
        sa.UniqueConstraint('probe_id', 'hour', name='uq_rollups_probe_hour'),
    )
    op.create_index('idx_rollups_node_hour', 'metric_rollups_hourly', ['node_id', 'hour'])
    op.create_index('idx_rollups_hour', 'metric_rollups_hourly', ['hour'])


def upgrade():
    if op.get_bind().dialect.name == 'postgresql':
        _partition_metrics()
    _create_rollups()


def downgrade():
    op.drop_index('idx_rollups_hour', table_name='metric_rollups_hourly')
    op.drop_index('idx_rollups_node_hour', table_name='metric_rollups_hourly')
    op.drop_table('metric_rollups_hourly')
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute("ALTER TABLE metrics RENAME TO metrics_partitioned")
    for name in INDEXES:
        op.execute(f"ALTER INDEX {name} RENAME TO {name}_part")
    for name in ("pk_metrics", "uq_metrics_probe_ts_agg", "fk_metrics_node_id_nodes",
                 "fk_metrics_probe_id_probes"):
        op.execute(f"ALTER TABLE metrics_partitioned RENAME CONSTRAINT {name} TO {name}_part")
    op.execute("ALTER SEQUENCE metrics_id_seq OWNED BY NONE")
    op.execute(f"""
        CREATE TABLE metrics ({METRIC_COLUMNS},
            CONSTRAINT pk_metrics PRIMARY KEY (id),
            CONSTRAINT uq_metrics_probe_ts_agg UNIQUE (probe_id, timestamp, is_aggregated))""")
    op.execute("ALTER TABLE metrics RENAME CONSTRAINT metrics_node_id_fkey "
               "TO fk_metrics_node_id_nodes")
    op.execute("ALTER TABLE metrics RENAME CONSTRAINT metrics_probe_id_fkey "
               "TO fk_metrics_probe_id_probes")
    op.execute("ALTER SEQUENCE metrics_id_seq OWNED BY metrics.id")
    for name, columns in INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON metrics {columns}")
    op.execute(f"INSERT INTO metrics ({COLUMN_NAMES}) "
               f"SELECT {COLUMN_NAMES} FROM metrics_partitioned")
    op.execute("DROP TABLE metrics_partitioned CASCADE")
