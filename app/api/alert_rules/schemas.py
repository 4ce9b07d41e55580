"""Alert rule payloads (SPEC §11). A malformed field answers ERR_INVALID_RULE."""

from __future__ import annotations

import math

import marshmallow as ma
from marshmallow import fields, validate

from app.api.common import StrictBoolean, StrictInteger, UtcDateTime
from app.models.alert import METRICS, OPS, SEVERITIES

RULE_ERROR_CODES = {name: "ERR_INVALID_RULE" for name in (
    "name", "metric", "op", "threshold", "recovery_threshold", "for_minutes", "mode",
    "node_id", "probe_id", "severity", "channel_ids", "repeat_minutes", "enabled")}


class StrictNumber(fields.Float):
    """A JSON number: no strings, booleans, NaN or infinities."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ma.ValidationError("must be a number")
        if not math.isfinite(value):
            raise ma.ValidationError("must be a finite number")
        return float(value)


class UuidList(fields.List):
    """A list of UUIDs whose errors belong to the list (one field, one code)."""

    def __init__(self, **kwargs):
        super().__init__(fields.UUID(), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return super()._deserialize(value, attr, data, **kwargs)
        except ma.ValidationError as exc:
            raise ma.ValidationError("must be a list of channel ids (UUIDs)") from exc


def _fields(create: bool) -> dict:
    """The rule's fields: with their defaults for POST/PUT, without any for PATCH."""

    def default(value):
        return {"load_default": value} if create else {}

    return {
        "name": fields.String(required=create, validate=validate.Length(1, 255)),
        "metric": fields.String(required=create, validate=validate.OneOf(METRICS)),
        "op": fields.String(allow_none=True, validate=validate.OneOf(OPS), **default(None)),
        "threshold": StrictNumber(allow_none=True, **default(None)),
        "recovery_threshold": StrictNumber(allow_none=True, **default(None)),
        "for_minutes": StrictInteger(validate=validate.Range(1, 1440), **default(3)),
        "mode": fields.String(validate=validate.OneOf(("static", "baseline")),
                              **default("static")),
        "node_id": fields.UUID(allow_none=True, **default(None)),
        "probe_id": fields.UUID(allow_none=True, **default(None)),
        "severity": fields.String(validate=validate.OneOf(SEVERITIES), **default("warning")),
        "channel_ids": UuidList(**default(list)),
        "repeat_minutes": StrictInteger(allow_none=True, validate=validate.Range(1, 10080),
                                        **default(None)),
        "enabled": StrictBoolean(**default(True)),
    }


RuleCreateSchema = ma.Schema.from_dict(_fields(True), name="AlertRuleCreate")
RuleCreateSchema.error_codes = RULE_ERROR_CODES
RulePatchSchema = ma.Schema.from_dict(_fields(False), name="AlertRulePatch")
RulePatchSchema.error_codes = RULE_ERROR_CODES


class RuleSchema(ma.Schema):
    id = fields.UUID()
    name = fields.String()
    metric = fields.String()
    op = fields.String(allow_none=True)
    threshold = fields.Float(allow_none=True)
    recovery_threshold = fields.Float(allow_none=True)
    for_minutes = fields.Integer()
    mode = fields.String()
    node_id = fields.UUID(allow_none=True)
    probe_id = fields.UUID(allow_none=True)
    severity = fields.String()
    channel_ids = fields.List(fields.String())
    repeat_minutes = fields.Integer(allow_none=True)
    enabled = fields.Boolean()
    created_at = UtcDateTime()
    updated_at = UtcDateTime()


class RuleListSchema(ma.Schema):
    data = fields.List(fields.Nested(RuleSchema))
