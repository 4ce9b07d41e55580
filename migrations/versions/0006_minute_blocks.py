"""minute blocks: a probe's finished hour of minute aggregates packed for 1m charts

Revision ID: 0006_minute_blocks
Revises: 0005_alerting
Create Date: 2026-11-30 01:40:00

The table is derived from `metrics` (app.history.minute_blocks) and filled by the hourly
roll-up from this revision on; until an hour has its block, charts read its minute rows.
"""
from alembic import op
import sqlalchemy as sa

revision = '0006_minute_blocks'
down_revision = '0005_alerting'
branch_labels = None
depends_on = None

FIELDS = ('ts_ms', 'latency_ms', 'latency_median_ms', 'latency_min_ms', 'latency_max_ms',
          'latency_p95_ms', 'packet_loss_rate', 'jitter_ms')


def upgrade():
    op.create_table(
        'metric_minute_blocks',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                  autoincrement=True, nullable=False),
        sa.Column('node_id', sa.Uuid(), nullable=False),
        sa.Column('probe_id', sa.Uuid(), nullable=False),
        sa.Column('hour', sa.DateTime(timezone=True), nullable=False),
        sa.Column('minute_count', sa.Integer(), nullable=False),
        sa.Column('null_fields', sa.Integer(), nullable=False),
        *(sa.Column(name, sa.LargeBinary(), nullable=False) for name in FIELDS),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['node_id'], ['nodes.id'],
                                name=op.f('fk_metric_minute_blocks_node_id_nodes'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['probe_id'], ['probes.id'],
                                name=op.f('fk_metric_minute_blocks_probe_id_probes'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_metric_minute_blocks')),
        sa.UniqueConstraint('probe_id', 'hour', name='uq_minute_blocks_probe_hour'),
        postgresql_with={'toast_tuple_target': 8160},
    )
    op.create_index('idx_minute_blocks_node_hour', 'metric_minute_blocks', ['node_id', 'hour'])
    op.create_index('idx_minute_blocks_hour', 'metric_minute_blocks', ['hour'])


def downgrade():
    op.drop_index('idx_minute_blocks_hour', table_name='metric_minute_blocks')
    op.drop_index('idx_minute_blocks_node_hour', table_name='metric_minute_blocks')
    op.drop_table('metric_minute_blocks')
