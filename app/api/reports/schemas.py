"""SLA report payloads (SPEC §12)."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields

from app.api.common import UtcDateTime
from app.api.fields import QueryTime, validate


class SlaArgsSchema(ma.Schema):
    error_codes = {"from": "ERR_INVALID_TIMESTAMP", "from_": "ERR_INVALID_TIMESTAMP",
                   "to": "ERR_INVALID_TIMESTAMP", "node_id": "ERR_NODE_NOT_FOUND",
                   "format": "ERR_VALIDATION"}

    from_ = QueryTime(data_key="from", load_default=None,
                                 metadata={"description": "default: 30 days before `to`"})
    to = QueryTime(load_default=None, metadata={"description": "default: now"})
    node_id = fields.UUID(load_default=None)
    format = fields.String(load_default="json", validate=validate.OneOf(("json", "csv")))


class SlaRowSchema(ma.Schema):
    node_id = fields.UUID()
    node = fields.String()
    probe_id = fields.UUID()
    probe = fields.String(metadata={"description": "the probe's label (never its target)"})
    type = fields.String()
    interval_seconds = fields.Integer()
    expected_runs = fields.Integer(metadata={"description": "period ÷ interval"})
    runs_with_data = fields.Integer()
    availability_pct = fields.Float(allow_none=True, metadata={
        "description": "runs with loss < 100 % over runs with data"})
    no_data_pct = fields.Float(metadata={"description": "1 − runs with data ÷ expected"})
    loss_mean_pct = fields.Float(allow_none=True)
    latency_p50_ms = fields.Float(allow_none=True, metadata={
        "description": "of the minute means; null past the minute retention"})
    latency_p95_ms = fields.Float(allow_none=True)
    latency_p99_ms = fields.Float(allow_none=True)
    jitter_mean_ms = fields.Float(allow_none=True)


class SlaReportSchema(ma.Schema):
    start = UtcDateTime(data_key="from")
    end = UtcDateTime(data_key="to")
    node_id = fields.UUID(allow_none=True)
    data = fields.List(fields.Nested(SlaRowSchema))
