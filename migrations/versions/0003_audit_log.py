"""audit_log (SPEC §4): who changed what, failed logins

Revision ID: 0003_audit_log
Revises: 0002
Create Date: 2026-11-29 16:30:00

The issue-14 branch chains it to 0001; once 0002 (issue 10) lands, its down_revision
becomes '0002' (the table depends on nothing else).
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

JSON = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')

# revision identifiers, used by Alembic.
revision = '0003_audit_log'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True,
              nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor_kind', sa.String(length=16), nullable=False),
    sa.Column('actor_id', sa.String(length=64), nullable=True),
    sa.Column('actor_label', sa.String(length=255), nullable=True),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('object_type', sa.String(length=32), nullable=False),
    sa.Column('object_id', sa.String(length=255), nullable=True),
    sa.Column('details', JSON, nullable=False),
    sa.Column('remote_addr', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    op.create_index('idx_audit_log_at', 'audit_log', ['at'], unique=False)
    op.create_index('idx_audit_log_actor_at', 'audit_log', ['actor_id', 'at'], unique=False)
    op.create_index('idx_audit_log_action_at', 'audit_log', ['action', 'at'], unique=False)


def downgrade():
    op.drop_index('idx_audit_log_action_at', table_name='audit_log')
    op.drop_index('idx_audit_log_actor_at', table_name='audit_log')
    op.drop_index('idx_audit_log_at', table_name='audit_log')
    op.drop_table('audit_log')
