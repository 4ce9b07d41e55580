"""Bounded free-form fields for the management payloads (issue 14).

Validated here, not left to the database: PostgreSQL refuses a NUL character in text and
SQLite stores it, so embedded and production mode must refuse the same input the same way
(400 with the field's code), and nothing unbounded reaches a row every list then carries.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

# C0 controls, DEL, and lone surrogates (JSON's "\ud800" parses, but is not encodable as
# UTF-8: the database driver would fail on it). None makes sense in a one-line value.
_UNWANTED = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
NO_CONTROL = "must not contain control characters"
# The same rule for the OpenAPI document (so generated clients and fuzzers know it).
# (No "$": in Python's regex, which fuzzers use, it also matches before a final newline.)
ONE_LINE_PATTERN = r"^[^\u0000-\u001f\u007f]*(?![\s\S])"

MAX_LABELS = 64
MAX_LABEL_KEY = 64
MAX_LABEL_VALUE = 256
# The heartbeat metadata limits of SPEC §5, for the other places a client reports
# metadata (Beacon registration, SDK drift heartbeats).
MAX_METADATA_KEYS = 32
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 256
# page × per_page stays far inside a 64-bit OFFSET (and any sane listing).
MAX_PAGE = 1_000_000


def _key_schema(max_length: int) -> dict:
    return {"minLength": 1, "maxLength": max_length, "pattern": ONE_LINE_PATTERN}


def document_key_rules(converter, field, ret, **kwargs) -> dict:
    """apispec attribute function: the key rules of Labels and FlatMetadata as JSON
    Schema's propertyNames. OpenAPI 3.0's subset has no way to say what keys may be (and
    apispec drops unknown metadata); tools that know the keyword, schemathesis among them,
    use it. Registered by create_app."""
    key_schema = getattr(field, "key_schema", None)
    return {"propertyNames": key_schema} if key_schema else {}


def text_problem(value: str) -> str | None:
    return NO_CONTROL if _UNWANTED.search(value) else None


class Text(fields.String):
    """A one-line string of bounded length without control characters."""

    def __init__(self, max_length: int, min_length: int | None = None, **kwargs: Any) -> None:
        validators = [validate.Length(min_length, max_length)]
        extra = kwargs.pop("validate", None)
        if extra is not None:
            validators.append(extra)
        metadata = {"pattern": ONE_LINE_PATTERN, **kwargs.pop("metadata", {})}
        super().__init__(validate=validators, metadata=metadata, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if _UNWANTED.search(text):
            raise ma.ValidationError(NO_CONTROL)
        return text


def _bounded_key(key: Any, max_length: int, what: str) -> str:
    if not isinstance(key, str) or not 1 <= len(key) <= max_length:
        raise ma.ValidationError(f"{what} keys must be 1-{max_length} characters")
    if _UNWANTED.search(key):
        raise ma.ValidationError(f"{what} keys {NO_CONTROL}")
    return key


class Labels(fields.Dict):
    """Up to 64 labels: string keys of 1-64 characters, string values of up to 256."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            keys=Text(MAX_LABEL_KEY, 1), values=Text(MAX_LABEL_VALUE),
            metadata={"maxProperties": MAX_LABELS}, **kwargs)
        self.key_schema = _key_schema(MAX_LABEL_KEY)

    def _deserialize(self, value, attr, data, **kwargs) -> dict[str, str]:
        if not isinstance(value, dict):
            raise ma.ValidationError("must be an object of string labels")
        if len(value) > MAX_LABELS:
            raise ma.ValidationError(f"at most {MAX_LABELS} labels, got {len(value)}")
        labels = {}
        for key, item in value.items():
            _bounded_key(key, MAX_LABEL_KEY, "label")
            if not isinstance(item, str) or len(item) > MAX_LABEL_VALUE:
                raise ma.ValidationError(
                    f"label {key!r}: must be a string of at most {MAX_LABEL_VALUE} characters")
            if _UNWANTED.search(item):
                raise ma.ValidationError(f"label {key!r}: {NO_CONTROL}")
            labels[key] = item
        return labels


class FlatMetadata(fields.Dict):
    """Up to 32 keys of 1-64 characters with scalar values (strings of up to 256)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(keys=Text(MAX_METADATA_KEY, 1), metadata={
            "maxProperties": MAX_METADATA_KEYS,
            "additionalProperties": {"nullable": True, "oneOf": [
                {"type": "string", "maxLength": MAX_METADATA_VALUE,
                 "pattern": ONE_LINE_PATTERN},
                {"type": "number", "minimum": -(2**63) + 1, "maximum": 2**63 - 1},
                {"type": "boolean"}]}}, **kwargs)
        self.key_schema = _key_schema(MAX_METADATA_KEY)

    def _deserialize(self, value, attr, data, **kwargs) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ma.ValidationError("must be an object")
        if len(value) > MAX_METADATA_KEYS:
            raise ma.ValidationError(f"at most {MAX_METADATA_KEYS} keys, got {len(value)}")
        for key, item in value.items():
            _bounded_key(key, MAX_METADATA_KEY, "metadata")
            if isinstance(item, str):
                if len(item) > MAX_METADATA_VALUE or _UNWANTED.search(item):
                    raise ma.ValidationError(
                        f"{key!r}: at most {MAX_METADATA_VALUE} characters, "
                        "no control characters")
            elif item is not None and not isinstance(item, bool | int | float):
                raise ma.ValidationError(f"{key!r}: values must be strings, numbers, "
                                         "booleans or null")
            elif isinstance(item, int) and not isinstance(item, bool) and abs(item) >= 2**63:
                raise ma.ValidationError(f"{key!r}: integer out of range")
            elif isinstance(item, float) and not math.isfinite(item):
                raise ma.ValidationError(f"{key!r}: numbers must be finite")
        return dict(value)


class QueryTime(fields.AwareDateTime):
    """A time in a query, given in UTC to the database: PostgreSQL refuses UTC offsets
    beyond ±15:59 that ISO 8601 allows, and Python's datetime arithmetic overflows near
    years 1 and 9999 (both were 500s). Kept within 1970-9000."""

    EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
    LATEST = datetime(9000, 1, 1, tzinfo=UTC)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(validate=validate.Range(self.EARLIEST, self.LATEST,
                                                 error="must be between 1970 and 9000"),
                         **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).astimezone(UTC)


def page_field(default: int = 1) -> fields.Integer:
    return fields.Integer(load_default=default, validate=validate.Range(1, MAX_PAGE))
