"""Pieces shared by the resource blueprints."""

from __future__ import annotations

import json
from typing import Any, NoReturn

import flask_smorest
import marshmallow as ma
from flask import request
from webargs.flaskparser import FlaskParser, is_json_request

from app.errors import ApiError, validation_error
from app.timeutil import iso_utc


class PulseParser(FlaskParser):
    """webargs parser whose errors carry the failing field's own code.

    A schema may define `error_codes = {"field": "ERR_…"}`; see validation_error.
    """

    DEFAULT_VALIDATION_STATUS = 400

    def handle_error(self, error: ma.ValidationError, req, schema: ma.Schema, *,
                     error_status_code, error_headers) -> NoReturn:
        messages = error.messages
        # webargs namespaces messages by location ({"json": {"port": [...]}}); a view reads
        # one location per schema, so the field names alone are what the client sent.
        if isinstance(messages, dict) and len(messages) == 1:
            (location, inner), = messages.items()
            if location in self.__location_map__ and isinstance(inner, dict):
                messages = inner
        raise validation_error(messages, getattr(schema, "error_codes", None))

    def _handle_invalid_json_error(self, error, req, *args: Any, **kwargs: Any) -> NoReturn:
        raise ApiError(400, "ERR_INVALID_JSON", "Request body is not valid JSON")

    def _raw_load_json(self, req):
        if not is_json_request(req):
            return ma.missing
        return parse_json_body(req.get_data(cache=True))

    def load_json(self, req, schema):
        require_json_body()  # here, not before_request: 401/403 come before 415
        data = super().load_json(req, schema)
        if data is not ma.missing and not isinstance(data, dict) and not schema.many:
            raise ApiError(400, "ERR_INVALID_JSON", "Request body must be a JSON object")
        return data


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = PulseParser()


def require_json_body() -> None:
    """415 for a write whose body is not JSON (webargs would otherwise see it as empty)."""
    if request.method not in ("POST", "PUT", "PATCH") or request.is_json:
        return
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    if request.content_length or chunked:
        raise ApiError(415, "ERR_UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json")


def parse_json_body(raw: bytes) -> Any:
    """The JSON of a request body; 400 ERR_INVALID_JSON when it is not JSON or is nested
    too deep to parse (Python's parser gives up near 1,000 levels with RecursionError)."""
    try:
        return json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "ERR_INVALID_JSON", "Request body is not valid JSON") from exc
    except RecursionError as exc:
        raise ApiError(400, "ERR_INVALID_JSON", "Request body is nested too deep") from exc


def load_json_body(schema: ma.Schema) -> dict:
    """Parse and validate the body outside webargs (batch items judged one by one)."""
    require_json_body()
    data = parse_json_body(request.get_data(cache=True))
    if not isinstance(data, dict):
        raise ApiError(400, "ERR_INVALID_JSON", "Request body must be a JSON object")
    try:
        return schema.load(data)
    except ma.ValidationError as err:
        raise validation_error(err.messages, getattr(schema, "error_codes", None)) from err


class PaginationSchema(ma.Schema):
    page = ma.fields.Integer()
    per_page = ma.fields.Integer()
    total = ma.fields.Integer()
    pages = ma.fields.Integer()


class StrictInteger(ma.fields.Integer):
    """An integer that refuses strings, booleans and non-integral numbers."""

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)

    def _validated(self, value):
        if isinstance(value, bool | str):
            raise self.make_error("invalid")
        return super()._validated(value)


class StrictBoolean(ma.fields.Boolean):
    """JSON true/false only (not 1, "yes" or "true")."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class UtcDateTime(ma.fields.DateTime):
    def _serialize(self, value, attr, obj, **kwargs):
        return iso_utc(value)
