"""The probe rules as marshmallow fields, shared by the API's schemas and the dashboard's
forms (one statement of each rule and its message: SPEC §5's codes are the API's)."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from app.models.probe import PROBE_TYPES
from app.services.targets import canonical_target, target_problem


def probe_range(bounds: tuple[int, int]) -> validate.Range:
    low, high = bounds
    return validate.Range(low, high, error=f"must be {low}-{high}, got {{input}}")


class ProbeType(fields.String):
    """TCP or UDP in any case, stored upper-case."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise ma.ValidationError("must be TCP or UDP")
        upper = value.strip().upper()
        if upper not in PROBE_TYPES:
            raise ma.ValidationError(f"must be TCP or UDP, got {value!r}")
        return upper


class Target(fields.String):
    """An IP address or RFC 1123 host name, in its one canonical spelling."""

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs).strip()
        problem = target_problem(value)
        if problem:
            raise ma.ValidationError(problem)
        return canonical_target(value)
