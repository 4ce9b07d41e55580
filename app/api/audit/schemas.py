"""Audit-log query and answer."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from app.api.common import PaginationSchema, UtcDateTime
from app.api.fields import QueryTime, Text, page_field


class AuditArgsSchema(ma.Schema):
    error_codes = {"from_": "ERR_INVALID_TIMESTAMP", "from": "ERR_INVALID_TIMESTAMP",
                   "to": "ERR_INVALID_TIMESTAMP"}

    from_ = QueryTime(data_key="from", load_default=None)
    to = QueryTime(load_default=None)
    actor = Text(255, load_default=None)
    action = Text(64, load_default=None)
    page = page_field()
    per_page = fields.Integer(load_default=100, validate=validate.Range(1, 500))


class AuditEntrySchema(ma.Schema):
    id = fields.Integer()
    at = UtcDateTime()
    actor = fields.Function(lambda row: {"kind": row.actor_kind, "id": row.actor_id,
                                         "label": row.actor_label})
    action = fields.String()
    object_type = fields.String()
    object_id = fields.String(allow_none=True)
    details = fields.Dict()
    remote_addr = fields.String(allow_none=True)


class AuditPageSchema(ma.Schema):
    data = fields.List(fields.Nested(AuditEntrySchema))
    pagination = fields.Nested(PaginationSchema)
