"""Node and enrollment-token payloads."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from app.api.common import PaginationSchema, StrictInteger, UtcDateTime
from app.api.fields import Labels, Text, page_field

NODE_ERROR_CODES = {"name": "ERR_INVALID_NAME", "region": "ERR_INVALID_REGION",
                    "labels": "ERR_INVALID_LABELS"}


class NodeCreateSchema(ma.Schema):
    error_codes = NODE_ERROR_CODES

    name = Text(255, 1, required=True)
    region = Text(64, load_default=None, allow_none=True)
    labels = Labels(load_default=dict)


class NodeUpdateSchema(ma.Schema):
    error_codes = NODE_ERROR_CODES

    name = Text(255, 1)
    region = Text(64, allow_none=True)
    labels = Labels()


class NodeSchema(ma.Schema):
    id = fields.UUID()
    name = fields.String()
    region = fields.String(allow_none=True)
    labels = fields.Dict()
    hostname = fields.String(allow_none=True)
    ip_address = fields.String(allow_none=True)
    agent_version = fields.String(allow_none=True)
    config_version = fields.String(allow_none=True)
    metadata = fields.Dict(attribute="metadata_")
    status = fields.String()
    uptime_24h = fields.Float(allow_none=True)
    last_seen_at = UtcDateTime(allow_none=True)
    first_seen_at = UtcDateTime(allow_none=True)
    created_at = UtcDateTime()
    updated_at = UtcDateTime()


class NodeWithTokenSchema(NodeSchema):
    token = fields.String(metadata={"description": "Shown once; only its hash is stored"})


class NodeListSchema(ma.Schema):
    data = fields.List(fields.Nested(NodeSchema))
    pagination = fields.Nested(PaginationSchema)


class NodeListArgsSchema(ma.Schema):
    page = page_field()
    per_page = fields.Integer(load_default=100, validate=validate.Range(1, 500))


class TokenSchema(ma.Schema):
    token = fields.String()


class EnrollmentCreateSchema(ma.Schema):
    expires_in_seconds = StrictInteger(load_default=3600, validate=validate.Range(60, 30 * 86400))
    uses = StrictInteger(load_default=1, validate=validate.Range(1, 10000))


class EnrollmentTokenSchema(ma.Schema):
    id = fields.UUID()
    token = fields.String()
    expires_at = UtcDateTime()
    uses_left = fields.Integer()


class EnrollmentTokenInfoSchema(ma.Schema):
    """An enrollment token as listed: never the token (only its hash is kept)."""

    id = fields.UUID()
    expires_at = UtcDateTime()
    uses_left = fields.Integer()
    created_by = fields.UUID(allow_none=True)
    created_at = UtcDateTime()
    usable = fields.Boolean(metadata={"description": "uses left and not expired"})


class EnrollmentTokenListSchema(ma.Schema):
    data = fields.List(fields.Nested(EnrollmentTokenInfoSchema))
