"""Beacon-facing payloads. Heartbeats are validated by app.ingest.rules (the
hot path); these schemas document them in OpenAPI and validate the config calls."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from app.api.fields import FlatMetadata, Text
from app.api.probes.schemas import PROBE_ERROR_CODES, ProbeRunSchema, ProbeSettingsSchema


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


class ResultSchema(ma.Schema):
    probe_id = fields.UUID(required=True)
    timestamp = fields.String()
    latency_ms = fields.Float(required=True)
    packet_loss_rate = fields.Float(required=True)
    jitter_ms = fields.Float(required=True)
    latency_median_ms = fields.Float()
    latency_min_ms = fields.Float()
    latency_max_ms = fields.Float()
    latency_p95_ms = fields.Float()
    latency_variance = fields.Float()
    sent = fields.Integer()
    received = fields.Integer()
    error = fields.String(allow_none=True)


class HeartbeatSchema(ma.Schema):
    node_id = fields.UUID(required=True)
    timestamp = fields.String(required=True, metadata={"example": "2026-01-30T12:34:56Z"})
    latency_ms = fields.Float(required=True)
    packet_loss_rate = fields.Float(required=True, metadata={"description": "percent 0-100"})
    jitter_ms = fields.Float(required=True)
    config_version = fields.String()
    agent_version = fields.String()
    metadata = fields.Dict()
    probe_id = fields.UUID(metadata={"description": "single-probe form"})
    results = fields.List(fields.Nested(ResultSchema), validate=validate.Length(max=1000))


class HeartbeatBatchSchema(ma.Schema):
    heartbeats = fields.List(fields.Nested(HeartbeatSchema), validate=validate.Length(max=500))


class HeartbeatAnswerSchema(ma.Schema):
    status = fields.String()
    message = fields.String()
    timestamp = fields.String()
    accepted = fields.Integer()
    config_version = fields.String()
    drift_detected = fields.Boolean()


class RejectedSchema(ma.Schema):
    index = fields.Integer()
    code = fields.String()
    message = fields.String()


class BatchAnswerSchema(ma.Schema):
    accepted = fields.Integer()
    rejected = fields.List(fields.Nested(RejectedSchema))
    config_version = fields.String()
    drift_detected = fields.Boolean()
