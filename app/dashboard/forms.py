"""Form parsing for the management pages, with the API's rules and messages.

A form posts strings, so numbers are parsed here (the API refuses a port sent as a JSON
string); the rules and their messages are the API's: the same ranges from the model, the
same target rule from app.services.targets, the same wording (tests/dashboard compares
the two answers field by field).
"""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from app.errors import ApiError
from app.models.probe import COUNT_RANGE, INTERVAL_RANGE, PORT_RANGE, TIMEOUT_RANGE
from app.services.probe_fields import ProbeType, Target, probe_range

FIELDS = ("node_id", "name", "type", "target", "port", "interval_seconds", "count",
          "timeout_seconds", "enabled")


class ProbeForm(ma.Schema):
    """A probe's fields as the add and edit forms post them."""

    node_id = fields.UUID(required=True)
    name = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=255))
    type = ProbeType(required=True)
    target = Target(required=True)
    port = fields.Integer(required=True, validate=probe_range(PORT_RANGE))
    interval_seconds = fields.Integer(load_default=60, validate=probe_range(INTERVAL_RANGE))
    count = fields.Integer(load_default=10, validate=probe_range(COUNT_RANGE))
    timeout_seconds = fields.Integer(load_default=5, validate=probe_range(TIMEOUT_RANGE))
    enabled = fields.Boolean(load_default=False)


def parse_probe_form(form) -> tuple[dict | None, dict[str, list[str]]]:
    """(probe fields, {}) or (None, {field: [messages]})."""
    raw = {key: form.get(key, "").strip() for key in FIELDS if form.get(key, "").strip()}
    raw["enabled"] = form.get("enabled") == "on"
    if "name" not in raw:
        raw["name"] = None
    try:
        return ProbeForm().load(raw), {}
    except ma.ValidationError as err:
        return None, {k: list(v) for k, v in err.messages.items()}


def field_of(err: ApiError) -> str:
    """The form field a service error belongs to (shown next to it)."""
    return {"ERR_NODE_NOT_FOUND": "node_id", "ERR_PROBE_EXISTS": "port"}.get(err.code, "_form")


class NodeForm(ma.Schema):
    name = fields.String(required=True, validate=validate.Length(1, 255))
    region = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64))


class EnrollmentForm(ma.Schema):
    expires_in_seconds = fields.Integer(load_default=3600,
                                        validate=validate.Range(60, 30 * 86400))
    uses = fields.Integer(load_default=1, validate=validate.Range(1, 10000))


def parse(schema: ma.Schema, form, names: tuple[str, ...]):
    raw = {key: form.get(key, "").strip() for key in names if form.get(key, "").strip()}
    try:
        return schema.load(raw), {}
    except ma.ValidationError as err:
        return None, {k: list(v) for k, v in err.messages.items()}
