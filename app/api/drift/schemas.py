"""Drift payloads (the Heartbeat SDK's server side)."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from app.api.common import UtcDateTime

SHORT = validate.Length(max=255)


class DriftHeartbeatSchema(ma.Schema):
    instance_id = fields.String(required=True, validate=validate.Length(1, 255))
    config_version = fields.String(required=True, validate=validate.Length(max=128))
    hostname = fields.String(allow_none=True, validate=SHORT)
    ip_address = fields.String(allow_none=True, validate=validate.Length(max=64))
    region = fields.String(allow_none=True, validate=validate.Length(max=64))
    kubernetes_pod = fields.String(allow_none=True, validate=SHORT)
    kubernetes_namespace = fields.String(allow_none=True, validate=SHORT)
    metadata = fields.Dict(allow_none=True)
    health = fields.String(load_default="healthy", validate=validate.Length(1, 32))


class DriftAnswerSchema(ma.Schema):
    registered = fields.Boolean()
    expected_version = fields.String(allow_none=True)
    drift_detected = fields.Boolean()


class ExpectedSchema(ma.Schema):
    expected_version = fields.String(required=True, validate=validate.Length(1, 128))


class ExpectedAnswerSchema(ma.Schema):
    app = fields.String()
    profile = fields.String()
    expected_version = fields.String()


class InstanceArgsSchema(ma.Schema):
    app = fields.String(load_default=None)
    profile = fields.String(load_default=None)


class InstanceSchema(ma.Schema):
    app = fields.String()
    profile = fields.String()
    instance_id = fields.String()
    config_version = fields.String(allow_none=True)
    expected_version = fields.String(allow_none=True)
    drift_detected = fields.Boolean()
    stale = fields.Boolean()
    health = fields.String(allow_none=True)
    hostname = fields.String(allow_none=True)
    ip_address = fields.String(allow_none=True)
    region = fields.String(allow_none=True)
    kubernetes_pod = fields.String(allow_none=True)
    kubernetes_namespace = fields.String(allow_none=True)
    metadata = fields.Dict(attribute="metadata_")
    first_seen_at = UtcDateTime()
    last_seen_at = UtcDateTime()


class InstanceListSchema(ma.Schema):
    data = fields.List(fields.Nested(InstanceSchema))
