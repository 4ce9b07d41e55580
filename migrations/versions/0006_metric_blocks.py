"""metric blocks: a probe's chart points packed a period to a row (a finished hour of
minute aggregates, a day of hourly rollups)

Revision ID: 0006_metric_blocks
Revises: 0005_alerting
Create Date: 2026-11-30 01:40:00

The table is derived from `metrics` and `metric_rollups_hourly` (app.history.blocks) and
filled by the hourly roll-up from this revision on; until a period has its block, charts
read its rows.
"""
from alembic import op
import sqlalchemy as sa

revision = '0006_metric_blocks'
down_revision = '0005_alerting'
branch_labels = None
depends_on = None

FIELDS = ('ts_ms', 'latency_ms', 'latency_median_ms', 'latency_min_ms', 'latency_max_ms',
          'latency_p95_ms', 'packet_loss_rate', 'jitter_ms')


def upgrade():
    op.create_table(
        'metric_blocks',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                  autoincrement=True, nullable=False),
        sa.Column('node_id', sa.Uuid(), nullable=False),
        sa.Column('probe_id', sa.Uuid(), nullable=False),
        sa.Column('resolution', sa.String(length=2), nullable=False),
        sa.Column('period_start', sa.DateTime(timezone=True), nullable=False),
        sa.Column('point_count', sa.Integer(), nullable=False),
        sa.Column('null_fields', sa.Integer(), nullable=False),
        *(sa.Column(name, sa.LargeBinary(), nullable=False) for name in FIELDS),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("resolution IN ('1m', '1h')",
                           name=op.f('ck_metric_blocks_resolution')),
        sa.ForeignKeyConstraint(['node_id'], ['nodes.id'],
                                name=op.f('fk_metric_blocks_node_id_nodes'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['probe_id'], ['probes.id'],
                                name=op.f('fk_metric_blocks_probe_id_probes'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_metric_blocks')),
        sa.UniqueConstraint('probe_id', 'resolution', 'period_start',
                            name='uq_metric_blocks_probe_period'),
        postgresql_with={'toast_tuple_target': 8160},
    )
    op.create_index('idx_metric_blocks_node_period', 'metric_blocks',
                    ['node_id', 'resolution', 'period_start'])
    op.create_index('idx_metric_blocks_period', 'metric_blocks', ['resolution', 'period_start'])


def downgrade():
    op.drop_index('idx_metric_blocks_period', table_name='metric_blocks')
    op.drop_index('idx_metric_blocks_node_period', table_name='metric_blocks')
    op.drop_table('metric_blocks')
