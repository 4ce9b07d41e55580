"""Alerts and alert events as answered (SPEC §11)."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from app.alerts.views import LISTED_STATES
from app.api.common import UtcDateTime
from app.api.fields import QueryTime


class AlertArgsSchema(ma.Schema):
    error_codes = {"state": "ERR_VALIDATION", "node_id": "ERR_INVALID_NODE_ID",
                   "probe_id": "ERR_VALIDATION"}

    state = fields.String(load_default=None, validate=validate.OneOf(LISTED_STATES))
    node_id = fields.UUID(load_default=None)
    probe_id = fields.UUID(load_default=None)


class SubjectSchema(ma.Schema):
    node_id = fields.String(allow_none=True)
    probe_id = fields.String()
    instance_id = fields.String()
    app = fields.String()
    profile = fields.String()
    label = fields.String(allow_none=True)


class AlertSchema(ma.Schema):
    id = fields.UUID()
    rule_id = fields.UUID()
    rule_name = fields.String()
    severity = fields.String()
    state = fields.String()
    subject = fields.Nested(SubjectSchema)
    value = fields.Float(allow_none=True)
    threshold = fields.Float(allow_none=True)
    started_at = UtcDateTime()
    fired_at = UtcDateTime(allow_none=True)
    resolved_at = UtcDateTime(allow_none=True)
    silenced = fields.Boolean()


class AlertListSchema(ma.Schema):
    data = fields.List(fields.Nested(AlertSchema))


class EventArgsSchema(ma.Schema):
    error_codes = {"from": "ERR_INVALID_TIMESTAMP", "to": "ERR_INVALID_TIMESTAMP"}

    from_ = QueryTime(data_key="from", load_default=None)
    to = QueryTime(load_default=None)


class DeliverySchema(ma.Schema):
    channel_id = fields.UUID()
    channel_name = fields.String()
    status = fields.String(metadata={"description": "queued, sending, sent or failed"})
    attempts = fields.Integer()
    sent_at = UtcDateTime(allow_none=True)
    error = fields.String(allow_none=True)


class EventSchema(ma.Schema):
    id = fields.Integer()
    alert_id = fields.UUID()
    rule_id = fields.UUID()
    rule_name = fields.String()
    at = UtcDateTime()
    from_state = fields.String()
    to_state = fields.String(metadata={"description": "pending, firing, resolved, ok (a "
                                                      "pending alert cleared) or repeat"})
    value = fields.Float(allow_none=True)
    silenced = fields.Boolean()
    reason = fields.String(allow_none=True)
    subject = fields.Nested(SubjectSchema)
    notifications = fields.List(fields.Nested(DeliverySchema))


class EventListSchema(ma.Schema):
    data = fields.List(fields.Nested(EventSchema))
