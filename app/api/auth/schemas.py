"""Login, API token and user payloads."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from app.api.common import UtcDateTime
from app.api.fields import Text
from app.models.user import ROLES


class LoginSchema(ma.Schema):
    email = Text(255, 1, required=True)
    password = fields.String(required=True, validate=validate.Length(1, 1024))


class AccessTokenSchema(ma.Schema):
    access_token = fields.String()
    token_type = fields.String()
    expires_in = fields.Integer()
    role = fields.String()


class ApiTokenCreateSchema(ma.Schema):
    error_codes = {"name": "ERR_INVALID_NAME", "role": "ERR_INVALID_ROLE"}

    name = Text(255, 1, required=True)
    role = fields.String(required=True, validate=validate.OneOf(ROLES))


class ApiTokenSchema(ma.Schema):
    id = fields.UUID()
    name = fields.String()
    role = fields.String()
    created_by = fields.UUID(allow_none=True)
    created_at = UtcDateTime()
    last_used_at = UtcDateTime(allow_none=True)
    revoked_at = UtcDateTime(allow_none=True)


class ApiTokenWithSecretSchema(ApiTokenSchema):
    token = fields.String(metadata={"description": "Shown once; only its hash is stored"})


USER_ERROR_CODES = {"email": "ERR_INVALID_EMAIL", "password": "ERR_INVALID_PASSWORD",
                    "role": "ERR_INVALID_ROLE"}


class UserCreateSchema(ma.Schema):
    error_codes = USER_ERROR_CODES

    email = fields.Email(required=True, validate=validate.Length(max=255))
    password = fields.String(required=True, load_only=True, validate=validate.Length(8, 1024))
    role = fields.String(required=True, validate=validate.OneOf(ROLES))


class UserPatchSchema(ma.Schema):
    error_codes = USER_ERROR_CODES

    role = fields.String(validate=validate.OneOf(ROLES))
    password = fields.String(load_only=True, validate=validate.Length(8, 1024))


class UserSchema(ma.Schema):
    id = fields.UUID()
    email = fields.String()
    role = fields.String()
    created_at = UtcDateTime()
