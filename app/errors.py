"""The error services and ingest raise; the API answers it as {"code", "message", "details"}."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error answered as {"code", "message", "details"} with an HTTP status."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}


def flatten_messages(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """{"results": {0: {"port": [..]}}} -> {"results.0.port": [..]}."""
    flat: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            flat.update(flatten_messages(value, name))
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        flat[prefix or "_schema"] = list(messages)
    elif isinstance(messages, list):
        for i, value in enumerate(messages):
            flat.update(flatten_messages(value, f"{prefix}.{i}" if prefix else str(i)))
    else:
        flat[prefix or "_schema"] = [str(messages)]
    return flat


def validation_error(messages: Any, error_codes: dict[str, str] | None = None) -> ApiError:
    """Turn marshmallow messages into one ApiError.

    One failing field answers with that field's own code (looked up by its leaf name in
    `error_codes`); several fields answer ERR_VALIDATION with every field listed.
    """
    fields = flatten_messages(messages)
    codes = error_codes or {}
    if len(fields) == 1:
        name, msgs = next(iter(fields.items()))
        code = codes.get(name.rsplit(".", 1)[-1], "ERR_VALIDATION")
        message = f"{name}: {msgs[0]}" if name != "_schema" else msgs[0]
    else:
        code = "ERR_VALIDATION"
        message = "Invalid fields: " + ", ".join(sorted(fields))
    return ApiError(400, code, message, {"fields": fields})
