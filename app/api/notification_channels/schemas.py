"""Notification channel payloads. The URL goes in and never comes out (redacted_url)."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from app.api.common import UtcDateTime
from app.models.alert import CHANNEL_KINDS

CHANNEL_ERROR_CODES = {"name": "ERR_VALIDATION", "kind": "ERR_INVALID_CHANNEL",
                       "url": "ERR_INVALID_CHANNEL"}


class ChannelCreateSchema(ma.Schema):
    error_codes = CHANNEL_ERROR_CODES

    name = fields.String(required=True, validate=validate.Length(1, 255))
    kind = fields.String(load_default="apprise", validate=validate.OneOf(CHANNEL_KINDS))
    url = fields.String(required=True, validate=validate.Length(1, 2048),
                        metadata={"description": "apprise URL, or the webhook's http(s) URL; "
                                                 "stored encrypted, answered redacted"})


class ChannelPatchSchema(ma.Schema):
    error_codes = CHANNEL_ERROR_CODES

    name = fields.String(validate=validate.Length(1, 255))
    kind = fields.String(validate=validate.OneOf(CHANNEL_KINDS))
    url = fields.String(validate=validate.Length(1, 2048))


class ChannelSchema(ma.Schema):
    id = fields.UUID()
    name = fields.String()
    kind = fields.String()
    url = fields.String(attribute="url_redacted",
                        metadata={"description": "scheme and host only"})
    created_at = UtcDateTime()
    updated_at = UtcDateTime()


class ChannelListSchema(ma.Schema):
    data = fields.List(fields.Nested(ChannelSchema))


class TestOutcomeSchema(ma.Schema):
    status = fields.String(metadata={"description": "sent or failed"})
    error = fields.String(allow_none=True, metadata={"description": "why, without the URL"})
