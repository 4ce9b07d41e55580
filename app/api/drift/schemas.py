"""Drift payloads (the Heartbeat SDK's server side)."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from app.api.common import UtcDateTime
from app.api.fields import FlatMetadata, Text

# app and profile: in paths and in the instance list's query.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"


class DriftHeartbeatSchema(ma.Schema):
    error_codes = {"metadata": "ERR_INVALID_METADATA"}

    instance_id = Text(255, 1, required=True)
    config_version = Text(128, required=True)
    hostname = Text(255, allow_none=True)
    ip_address = Text(64, allow_none=True)
    region = Text(64, allow_none=True)
    kubernetes_pod = Text(255, allow_none=True)
    kubernetes_namespace = Text(255, allow_none=True)
    metadata = FlatMetadata(allow_none=True)
    health = Text(32, 1, load_default="healthy")


class DriftAnswerSchema(ma.Schema):
    registered = fields.Boolean()
    expected_version = fields.String(allow_none=True)
    drift_detected = fields.Boolean()


class ExpectedSchema(ma.Schema):
    expected_version = Text(128, 1, required=True)


class ExpectedAnswerSchema(ma.Schema):
    app = fields.String()
    profile = fields.String()
    expected_version = fields.String()


class InstanceArgsSchema(ma.Schema):
    error_codes = {"app": "ERR_INVALID_APP", "profile": "ERR_INVALID_PROFILE"}

    app = fields.String(load_default=None, validate=validate.Regexp(NAME_PATTERN))
    profile = fields.String(load_default=None, validate=validate.Regexp(NAME_PATTERN))


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
