"""The error services raise; the API answers it as {"code", "message", "details"}."""

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
