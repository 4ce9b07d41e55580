"""alerting: rules, alerts, events, notification channels and their outbox, silences

Revision ID: 0005_alerting
Revises: 0004
Create Date: 2026-11-29 16:30:00

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

JSON = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')
BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
OPEN = "state IN ('pending', 'firing')"

revision = '0005_alerting'
down_revision = '0004'
branch_labels = None
depends_on = None


def _ts(name, nullable=False):
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade():
    op.create_table('alert_rules',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('metric', sa.String(length=32), nullable=False),
    sa.Column('op', sa.String(length=2), nullable=True),
    sa.Column('threshold', sa.Double(), nullable=True),
    sa.Column('recovery_threshold', sa.Double(), nullable=True),
    sa.Column('for_minutes', sa.Integer(), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('node_id', sa.Uuid(), nullable=True),
    sa.Column('probe_id', sa.Uuid(), nullable=True),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('channel_ids', JSON, nullable=False),
    sa.Column('repeat_minutes', sa.Integer(), nullable=True),
    sa.Column('enabled', sa.Boolean(), server_default=sa.true(), nullable=False),
    _ts('created_at'), _ts('updated_at'),
    sa.CheckConstraint("metric IN ('latency_ms', 'latency_p95_ms', 'packet_loss_rate', "
                       "'jitter_ms', 'node_offline', 'drift')",
                       name=op.f('ck_alert_rules_metric')),
    sa.CheckConstraint("severity IN ('warning', 'critical')", name=op.f('ck_alert_rules_severity')),
    sa.CheckConstraint("mode IN ('static', 'baseline')", name=op.f('ck_alert_rules_mode')),
    sa.ForeignKeyConstraint(['node_id'], ['nodes.id'], name=op.f('fk_alert_rules_node_id_nodes'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['probe_id'], ['probes.id'],
                            name=op.f('fk_alert_rules_probe_id_probes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_rules'))
    )
    op.create_table('notification_channels',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('url_encrypted', sa.Text(), nullable=False),
    sa.Column('url_redacted', sa.String(length=255), nullable=False),
    _ts('created_at'), _ts('updated_at'),
    sa.CheckConstraint("kind IN ('apprise', 'webhook')", name=op.f('ck_notification_channels_kind')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_channels')),
    sa.UniqueConstraint('name', name=op.f('uq_notification_channels_name'))
    )
    op.create_table('alerts',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('rule_id', sa.Uuid(), nullable=False),
    sa.Column('subject_key', sa.String(length=700), nullable=False),
    sa.Column('node_id', sa.Uuid(), nullable=True),
    sa.Column('probe_id', sa.Uuid(), nullable=True),
    sa.Column('subject', JSON, nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('value', sa.Double(), nullable=True),
    sa.Column('threshold', sa.Double(), nullable=True),
    _ts('started_at'), _ts('fired_at', True), _ts('resolved_at', True),
    _ts('last_notified_at', True),
    sa.Column('notified', sa.Boolean(), server_default=sa.false(), nullable=False),
    _ts('clear_since', True), _ts('updated_at'),
    sa.CheckConstraint("state IN ('pending', 'firing', 'resolved', 'ok')",
                       name=op.f('ck_alerts_state')),
    sa.ForeignKeyConstraint(['node_id'], ['nodes.id'], name=op.f('fk_alerts_node_id_nodes'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['probe_id'], ['probes.id'], name=op.f('fk_alerts_probe_id_probes'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['rule_id'], ['alert_rules.id'],
                            name=op.f('fk_alerts_rule_id_alert_rules'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts'))
    )
    op.create_index('idx_alerts_state', 'alerts', ['state'], unique=False)
    op.create_index('uq_alerts_open_subject', 'alerts', ['rule_id', 'subject_key'], unique=True,
                    postgresql_where=sa.text(OPEN), sqlite_where=sa.text(OPEN))
    op.create_table('alert_events',
    sa.Column('id', BIGINT_PK, autoincrement=True, nullable=False),
    sa.Column('alert_id', sa.Uuid(), nullable=False),
    sa.Column('rule_id', sa.Uuid(), nullable=False),
    _ts('at'),
    sa.Column('from_state', sa.String(length=16), nullable=False),
    sa.Column('to_state', sa.String(length=16), nullable=False),
    sa.Column('value', sa.Double(), nullable=True),
    sa.Column('silenced', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('reason', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'],
                            name=op.f('fk_alert_events_alert_id_alerts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_events'))
    )
    op.create_index('idx_alert_events_at', 'alert_events', ['at'], unique=False)
    op.create_table('notification_outbox',
    sa.Column('id', BIGINT_PK, autoincrement=True, nullable=False),
    sa.Column('event_id', sa.BigInteger(), nullable=False),
    sa.Column('channel_id', sa.Uuid(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    _ts('next_attempt_at'), _ts('claimed_at', True), _ts('sent_at', True),
    sa.Column('last_error', sa.String(length=255), nullable=True),
    _ts('created_at'),
    sa.CheckConstraint("status IN ('queued', 'sending', 'sent', 'failed')",
                       name=op.f('ck_notification_outbox_status')),
    sa.ForeignKeyConstraint(['channel_id'], ['notification_channels.id'],
                            name=op.f('fk_notification_outbox_channel_id_notification_channels'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['event_id'], ['alert_events.id'],
                            name=op.f('fk_notification_outbox_event_id_alert_events'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_outbox')),
    sa.UniqueConstraint('event_id', 'channel_id', name='uq_notification_outbox_event_channel')
    )
    op.create_index('idx_notification_outbox_status', 'notification_outbox',
                    ['status', 'next_attempt_at'], unique=False)
    op.create_table('silences',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('node_id', sa.Uuid(), nullable=True),
    sa.Column('probe_id', sa.Uuid(), nullable=True),
    sa.Column('rule_id', sa.Uuid(), nullable=True),
    _ts('starts_at'), _ts('ends_at'),
    sa.Column('comment', sa.String(length=1000), nullable=False),
    sa.Column('created_by', sa.Uuid(), nullable=True),
    _ts('created_at'),
    sa.ForeignKeyConstraint(['node_id'], ['nodes.id'], name=op.f('fk_silences_node_id_nodes'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['probe_id'], ['probes.id'],
                            name=op.f('fk_silences_probe_id_probes'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['rule_id'], ['alert_rules.id'],
                            name=op.f('fk_silences_rule_id_alert_rules'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_silences'))
    )
    op.create_index('idx_silences_ends_at', 'silences', ['ends_at'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        for table in ('alert_rules', 'notification_channels'):
            op.execute(f"CREATE TRIGGER trg_{table}_updated_at BEFORE UPDATE ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION set_updated_at()")


def downgrade():
    op.drop_index('idx_silences_ends_at', table_name='silences')
    op.drop_table('silences')
    op.drop_index('idx_notification_outbox_status', table_name='notification_outbox')
    op.drop_table('notification_outbox')
    op.drop_index('idx_alert_events_at', table_name='alert_events')
    op.drop_table('alert_events')
    op.drop_index('uq_alerts_open_subject', table_name='alerts',
                  postgresql_where=sa.text(OPEN), sqlite_where=sa.text(OPEN))
    op.drop_index('idx_alerts_state', table_name='alerts')
    op.drop_table('alerts')
    op.drop_table('notification_channels')
    op.drop_table('alert_rules')
