"""Errors raised by the Heartbeat SDK."""

from __future__ import annotations


class ConfigError(ValueError):
    """The client configuration is invalid; ``field`` names the offending setting."""

    def __init__(self, field: str, reason: str = "is required") -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class ReporterError(Exception):
    """A heartbeat could not be delivered (base class of the errors below)."""


class NetworkError(ReporterError):
    """Connection failure, TLS failure or timeout: the server gave no HTTP answer.

    ``retryable`` is False for failures another attempt cannot cure: a TLS handshake or
    certificate error, or a malformed URL.
    """

    def __init__(self, message: str, retryable: bool = True) -> None:
        self.retryable = retryable
        super().__init__(message)


class ParseError(ReporterError):
    """The server answered 2xx but the body is not the JSON document expected."""


class ServerError(ReporterError):
    """The server answered with a non-2xx status.

    ``status`` is the HTTP status, ``body`` the response text (decoded JSON, when it is
    JSON, is in ``payload``), ``retry_after`` the parsed ``Retry-After`` in seconds if any.
    """

    def __init__(
        self,
        status: int,
        body: str,
        payload: object = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.payload = payload
        self.retry_after = retry_after
        super().__init__(f"HTTP {status}: {self.summary}")

    @property
    def summary(self) -> str:
        """One short line: ``ERR_CODE: message`` of a Pulse error, else the body's start."""
        if isinstance(self.payload, dict) and isinstance(self.payload.get("code"), str):
            message = self.payload.get("message")
            text = f"{self.payload['code']}: {message}" if message else self.payload["code"]
        else:
            text = " ".join(self.body.split())
        return text[:160]

    @property
    def code(self) -> str | None:
        """The ``code`` of a Pulse error document (``ERR_…``), when there is one."""
        if isinstance(self.payload, dict):
            code = self.payload.get("code")
            return code if isinstance(code, str) else None
        return None

    @property
    def retryable(self) -> bool:
        """5xx, 408 and 429 are worth another attempt; any other 4xx is final."""
        return self.status >= 500 or self.status in (408, 429)
