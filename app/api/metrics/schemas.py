"""Metric query payloads."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from app.api.common import UtcDateTime
from app.api.fields import QueryTime
from app.timeutil import from_ms, iso_utc


class EpochMsDateTime(fields.Field):
    """Serialises an epoch-ms integer as ISO 8601 UTC with a Z."""

    def _serialize(self, value, attr, obj, **kwargs):
        return iso_utc(from_ms(value)) if value is not None else None


class MetricsArgsSchema(ma.Schema):
    error_codes = {"from_": "ERR_INVALID_TIMESTAMP", "to": "ERR_INVALID_TIMESTAMP",
                   "from": "ERR_INVALID_TIMESTAMP", "probe_id": "ERR_PROBE_NOT_FOUND",
                   "resolution": "ERR_VALIDATION"}

    probe_id = fields.UUID(load_default=None)
    from_ = QueryTime(data_key="from", load_default=None, default_timezone=None)
    to = QueryTime(load_default=None)
    resolution = fields.String(load_default="auto",
                               validate=validate.OneOf(("raw", "1m", "1h", "auto")))


class PointSchema(ma.Schema):
    timestamp = EpochMsDateTime(attribute="ts_ms")
    latency_ms = fields.Float(allow_none=True)
    packet_loss_rate = fields.Float(allow_none=True)
    jitter_ms = fields.Float(allow_none=True)
    latency_min_ms = fields.Float()
    latency_max_ms = fields.Float()
    jitter_max_ms = fields.Float()
    packet_loss_max = fields.Float()
    sample_count = fields.Integer()


class MetricsSchema(ma.Schema):
    node_id = fields.UUID()
    probe_id = fields.UUID(allow_none=True)
    resolution = fields.String()
    points = fields.List(fields.Nested(PointSchema))


class ProbeLiveSchema(ma.Schema):
    probe_id = fields.String()
    points = fields.List(fields.Nested(PointSchema))


class LiveSchema(ma.Schema):
    node_id = fields.UUID()
    summary = fields.List(fields.Nested(PointSchema))
    probes = fields.List(fields.Nested(ProbeLiveSchema))


class LatestSchema(ma.Schema):
    latency_ms = fields.Float()
    packet_loss_rate = fields.Float()
    jitter_ms = fields.Float()


class OverviewItemSchema(ma.Schema):
    node_id = fields.UUID()
    name = fields.String()
    status = fields.String()
    last_seen_at = UtcDateTime(allow_none=True)
    latest = fields.Nested(LatestSchema, allow_none=True)
    uptime_24h = fields.Float()


class OverviewSchema(ma.Schema):
    data = fields.List(fields.Nested(OverviewItemSchema))
