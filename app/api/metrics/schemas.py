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
                   "resolution": "ERR_VALIDATION", "format": "ERR_VALIDATION"}

    probe_id = fields.UUID(load_default=None)
    from_ = QueryTime(data_key="from", load_default=None, default_timezone=None)
    to = QueryTime(load_default=None)
    resolution = fields.String(load_default="auto",
                               validate=validate.OneOf(("raw", "1m", "1h", "auto")))
    format = fields.String(load_default="json", validate=validate.OneOf(("json", "csv")),
                           metadata={"description": "csv (or Accept: text/csv) streams the "
                                                    "same points as CSV"})


class PointSchema(ma.Schema):
    """A run (raw) or a bucket (1m, 1h). Latency figures are null where nothing was
    received, never 0; aggregated buckets add jitter_max_ms, packet_loss_max and
    sample_count, and their median/p95 are the means of the runs' medians and p95s."""

    timestamp = EpochMsDateTime(attribute="ts_ms")
    latency_ms = fields.Float(allow_none=True)
    packet_loss_rate = fields.Float(allow_none=True)
    jitter_ms = fields.Float(allow_none=True)
    latency_min_ms = fields.Float(allow_none=True)
    latency_median_ms = fields.Float(allow_none=True)
    latency_p95_ms = fields.Float(allow_none=True)
    latency_max_ms = fields.Float(allow_none=True)
    sent = fields.Integer(allow_none=True)
    received = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True, metadata={"description": "raw runs: SPEC §7 code"})
    jitter_max_ms = fields.Float(allow_none=True)
    packet_loss_max = fields.Float(allow_none=True)
    sample_count = fields.Integer()


_CASTS = {name: float if isinstance(field, fields.Float) else
          int if isinstance(field, fields.Integer) else str
          for name, field in PointSchema._declared_fields.items() if name != "timestamp"}


def _answered_point(point: dict) -> dict:
    """PointSchema().dump(point), without a schema pass: the same keys and types."""
    shown = {"timestamp": iso_utc(from_ms(point["ts_ms"]))}
    for name, value in point.items():
        cast = _CASTS.get(name)
        if cast is not None:
            shown[name] = value if value is None or type(value) is cast else cast(value)
    return shown


class PointList(fields.List):
    """A list of PointSchema (documented as such), dumped point by point without
    marshmallow's pass per field: a two-year chart is 17,520 points, and the schema pass
    cost ~40 µs each where the values are already the answer's types."""

    def __init__(self, **kwargs):
        super().__init__(fields.Nested(PointSchema), **kwargs)

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else [_answered_point(point) for point in value]


class ProbeInfoSchema(ma.Schema):
    name = fields.String(allow_none=True)
    type = fields.String()
    label = fields.String(metadata={"description": "the name, or `<TYPE> #<first 8 of id>`"})


class MetricsSchema(ma.Schema):
    node_id = fields.UUID()
    probe_id = fields.UUID(allow_none=True)
    probe = fields.Nested(ProbeInfoSchema, allow_none=True)
    resolution = fields.String()
    points = PointList()


class ProbeLiveSchema(ProbeInfoSchema):
    probe_id = fields.String()
    points = PointList()


class LiveSchema(ma.Schema):
    node_id = fields.UUID()
    summary = PointList()
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
    uptime_24h = fields.Float(allow_none=True)


class OverviewSchema(ma.Schema):
    data = fields.List(fields.Nested(OverviewItemSchema))
