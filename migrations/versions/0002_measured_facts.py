"""every measured fact kept: a run's spread, counts and error; nodes' first_seen_at

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 16:10:00

"""
from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('metrics', schema=None) as batch_op:
        batch_op.add_column(sa.Column('latency_median_ms', sa.Numeric(precision=10, scale=2), nullable=True))
        batch_op.add_column(sa.Column('latency_p95_ms', sa.Numeric(precision=10, scale=2), nullable=True))
        batch_op.add_column(sa.Column('sent', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('received', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('error_code', sa.String(length=32), nullable=True))
    with op.batch_alter_table('nodes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.alter_column('agent_version', existing_type=sa.String(length=64),
                              type_=sa.String(length=128), existing_nullable=True)
    # A dead path used to be stored as latency 0: a raw row that lost every sample had no
    # latency to report. Nulled, so charts and means stop counting it as the fastest run.
    op.execute("UPDATE metrics SET latency_ms = NULL, jitter_ms = NULL "
               "WHERE is_aggregated = false AND packet_loss_rate >= 100")
    # What first reported before first_seen_at existed: its last report is the best bound.
    op.execute("UPDATE nodes SET first_seen_at = last_seen_at WHERE first_seen_at IS NULL")


def downgrade():
    with op.batch_alter_table('nodes', schema=None) as batch_op:
        batch_op.alter_column('agent_version', existing_type=sa.String(length=128),
                              type_=sa.String(length=64), existing_nullable=True)
        batch_op.drop_column('first_seen_at')
    with op.batch_alter_table('metrics', schema=None) as batch_op:
        batch_op.drop_column('error_code')
        batch_op.drop_column('received')
        batch_op.drop_column('sent')
        batch_op.drop_column('latency_p95_ms')
        batch_op.drop_column('latency_median_ms')
