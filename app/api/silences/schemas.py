"""Silence payloads (SPEC §11)."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields

from app.api.common import UtcDateTime
from app.api.fields import QueryTime, validate

SILENCE_ERROR_CODES = {"node_id": "ERR_INVALID_NODE_ID", "probe_id": "ERR_INVALID_SILENCE",
                       "rule_id": "ERR_INVALID_SILENCE", "starts_at": "ERR_INVALID_SILENCE",
                       "ends_at": "ERR_INVALID_SILENCE", "comment": "ERR_INVALID_SILENCE"}


class SilenceCreateSchema(ma.Schema):
    error_codes = SILENCE_ERROR_CODES

    node_id = fields.UUID(load_default=None, allow_none=True)
    probe_id = fields.UUID(load_default=None, allow_none=True)
    rule_id = fields.UUID(load_default=None, allow_none=True)
    starts_at = QueryTime(required=True)
    ends_at = QueryTime(required=True)
    comment = fields.String(load_default="", validate=validate.Length(max=1000))


class SilenceSchema(ma.Schema):
    id = fields.UUID()
    node_id = fields.UUID(allow_none=True)
    probe_id = fields.UUID(allow_none=True)
    rule_id = fields.UUID(allow_none=True)
    starts_at = UtcDateTime()
    ends_at = UtcDateTime()
    comment = fields.String()
    created_by = fields.UUID(allow_none=True)
    created_at = UtcDateTime()


class SilenceListArgsSchema(ma.Schema):
    expired = fields.Boolean(load_default=False,
                             metadata={"description": "include silences that have ended"})


class SilenceListSchema(ma.Schema):
    data = fields.List(fields.Nested(SilenceSchema))
