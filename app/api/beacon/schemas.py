"""Beacon-facing payloads. Heartbeats are validated by app.ingest.rules (the
hot path); these schemas document them in OpenAPI and validate the config calls."""

from __future__ import annotations

import math

import marshmallow as ma
from marshmallow import fields, validate

from app.api.fields import FlatMetadata, Text
from app.api.probes.schemas import PROBE_ERROR_CODES, ProbeRunSchema, ProbeSettingsSchema
from app.ingest.rules import MAX_RESULTS, NULLABLE_REQUIRED, NUMBER_RULES, VERSION_MAX


class RegisterSchema(ma.Schema):
    error_codes = {"name": "ERR_INVALID_NAME", "metadata": "ERR_INVALID_METADATA"}

    enroll_token = Text(200, 1, required=True)
    name = Text(255, 1, required=True)
    metadata = FlatMetadata(load_default=dict)


class RegisteredSchema(ma.Schema):
    node_id = fields.UUID()
    token = fields.String()


BeaconProbeSchema = ProbeRunSchema


class BeaconConfigSchema(ma.Schema):
    node_id = fields.UUID()
    config_version = fields.String()
    probes = fields.List(fields.Nested(BeaconProbeSchema))


class DeclaredProbesSchema(ma.Schema):
    config_version = fields.String()
    probes = fields.List(fields.Nested(BeaconProbeSchema))


class DeclareProbesSchema(ma.Schema):
    error_codes = PROBE_ERROR_CODES

    probes = fields.List(fields.Nested(ProbeSettingsSchema), required=True,
                         validate=validate.Length(max=1000))


def _json_number(value, field: fields.Field, whole: bool):
    """The value as the hot path reads a JSON number: not a string, not a boolean, finite;
    `whole`: without a fraction (10.0 is 10)."""
    if isinstance(value, bool | str) or not isinstance(value, int | float) \
            or not math.isfinite(value):
        raise field.make_error("invalid")
    if whole and not float(value).is_integer():
        raise field.make_error("invalid")
    return int(value) if whole else float(value)


class JsonNumber(fields.Float):
    def _validated(self, value):
        return _json_number(value, self, whole=False)


class JsonInteger(fields.Integer):
    def _validated(self, value):
        return _json_number(value, self, whole=True)


def _number_field(name: str, **extra) -> fields.Field:
    """A numeric field built from the ingest rules (app.ingest.rules.NUMBER_RULES), so the
    documented schema and the validator cannot drift apart (a property test holds them)."""
    rule = NUMBER_RULES[name]
    nullable = not rule.required or name in NULLABLE_REQUIRED
    bounds = validate.Range(min=rule.low, max=None if rule.high == float("inf") else rule.high)
    kind = JsonInteger if rule.integer else JsonNumber
    return kind(required=rule.required, allow_none=nullable, validate=bounds, **extra)


class ResultSchema(ma.Schema):
    probe_id = fields.UUID(required=True)
    timestamp = fields.String(metadata={"description": "defaults to the heartbeat's"})
    latency_ms = _number_field("latency_ms", metadata={
        "description": "mean RTT; null (stored null) when nothing was received"})
    packet_loss_rate = _number_field("packet_loss_rate", metadata={"description": "percent"})
    jitter_ms = _number_field("jitter_ms")
    latency_median_ms = _number_field("latency_median_ms")
    latency_min_ms = _number_field("latency_min_ms")
    latency_max_ms = _number_field("latency_max_ms")
    latency_p95_ms = _number_field("latency_p95_ms")
    latency_variance = _number_field("latency_variance")
    sent = _number_field("sent")
    received = _number_field("received")
    error = fields.String(allow_none=True, metadata={
        "description": "SPEC §7 code (ERR_CONNECTION_REFUSED, …); unknown ones are stored "
                       "as ERR_SOCKET"})


class HeartbeatSchema(ma.Schema):
    node_id = fields.UUID(required=True)
    timestamp = fields.String(required=True, metadata={"example": "2026-01-30T12:34:56Z"})
    latency_ms = _number_field("latency_ms")
    packet_loss_rate = _number_field("packet_loss_rate", metadata={
        "description": "percent 0-100: mean over the latest run of every probe"})
    jitter_ms = _number_field("jitter_ms")
    config_version = fields.String(metadata={
        "description": f"at most {VERSION_MAX} characters (longer is cut, with a warning)"})
    agent_version = fields.String(metadata={
        "description": f"at most {VERSION_MAX} characters (longer is cut, with a warning)"})
    metadata = fields.Dict(metadata={
        "description": "at most 32 keys of scalar values, keys <= 64 and values <= 256 "
                       "characters; what breaks the limits is cut or dropped, with a warning"})
    probe_id = fields.UUID(metadata={"description": "single-probe form"})
    results = fields.List(fields.Nested(ResultSchema), validate=validate.Length(max=MAX_RESULTS),
                          metadata={"description": "empty or absent (and no probe_id): a "
                                                   "liveness-only heartbeat, no point stored"})


class HeartbeatBatchSchema(ma.Schema):
    heartbeats = fields.List(fields.Nested(HeartbeatSchema), validate=validate.Length(max=500))


class WarningSchema(ma.Schema):
    field = fields.String()
    message = fields.String()


class HeartbeatAnswerSchema(ma.Schema):
    status = fields.String()
    message = fields.String()
    timestamp = fields.String()
    accepted = fields.Integer()
    config_version = fields.String()
    drift_detected = fields.Boolean()
    warnings = fields.List(fields.Nested(WarningSchema))


class RejectedSchema(ma.Schema):
    index = fields.Integer()
    code = fields.String()
    message = fields.String()


class BatchWarningSchema(WarningSchema):
    index = fields.Integer()


class BatchAnswerSchema(ma.Schema):
    accepted = fields.Integer()
    rejected = fields.List(fields.Nested(RejectedSchema))
    warnings = fields.List(fields.Nested(BatchWarningSchema))
    config_version = fields.String()
    drift_detected = fields.Boolean()
