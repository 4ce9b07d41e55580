"""HTTP transport shared by the SDK client and the Beacon reporter.

One ``requests.Session`` per transport, TLS verified by default with an optional private
CA and TLS 1.2 as the floor, a per-attempt timeout, and bounded retries with exponential
backoff plus jitter. Waits between attempts go through a ``threading.Event`` so a caller
that is shutting down is never stuck in a backoff sleep.
"""

from __future__ import annotations

import email.utils
import errno
import json
import logging
import random
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from beacon.sdk.errors import NetworkError, ParseError, ReporterError, ServerError

log = logging.getLogger("beacon.sdk")

RETRYABLE_STATUS = frozenset({408, 429})
# Failures another attempt cannot cure: wrong certificate or TLS version, a bad URL.
# (SSLError is a ConnectionError subclass, so it must be told apart explicitly.)
FINAL_REQUEST_ERRORS = (
    requests.exceptions.SSLError,
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
)


def _causes(exc: BaseException, limit: int = 12) -> list[BaseException]:
    """``exc`` and what it wraps: causes, contexts, urllib3's ``reason`` and exception args."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo and len(seen) < limit:
        item = todo.pop(0)
        if any(item is s for s in seen):
            continue
        seen.append(item)
        nested = [item.__cause__, item.__context__, getattr(item, "reason", None), *item.args]
        todo.extend(n for n in nested if isinstance(n, BaseException))
    return seen


def describe_request_error(exc: requests.RequestException, url: str, timeout: float) -> str:
    """One short line for a failed request (``connection refused to https://…``).

    requests' own text nests urllib3's pool, retry and connection objects into a few
    hundred characters per attempt; an operator needs what happened and where.
    """
    causes = _causes(exc)
    for cause in causes:
        if isinstance(cause, ssl.SSLError):
            text = re.sub(r"\s*\(_ssl\.c:\d+\)", "", str(cause))
            return f"TLS error with {url}: {text}"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS error with {url}"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"connection timed out ({timeout:g} s) to {url}"
    if isinstance(exc, requests.exceptions.Timeout):
        return f"no answer within {timeout:g} s from {url}"
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
        return f"invalid URL {url}"
    for cause in causes:
        if isinstance(cause, ConnectionRefusedError):
            return f"connection refused to {url}"
        if isinstance(cause, socket.gaierror) or type(cause).__name__ == "NameResolutionError":
            return f"cannot resolve the host of {url}"
        if isinstance(cause, ConnectionResetError):
            return f"connection reset by {url}"
        if isinstance(cause, OSError) and cause.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return f"network unreachable to {url}"
        if type(cause).__name__ == "RemoteDisconnected":
            return f"connection closed by {url} without an answer"
    return f"{exc.__class__.__name__} with {url}"


def backoff_delay(
    attempt: int,
    initial: float,
    maximum: float,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based).

    ``initial × 2^(attempt-1)`` capped at ``maximum``, plus up to 10 % jitter on top so
    that many clients failing together do not retry in lockstep.
    """
    base = min(initial * (2 ** (attempt - 1)), maximum)
    return base + (rng or random).uniform(0.0, 0.1 * base)


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; None when absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class TLSAdapter(HTTPAdapter):
    """An adapter whose SSL context refuses anything older than TLS 1.2."""

    def __init__(self, verify: bool, ca_file: str | None, **kwargs: Any) -> None:
        ctx = ssl.create_default_context(cafile=ca_file) if verify else ssl.create_default_context()
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if not verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        self._ssl_context = ctx
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._ssl_context
        super().init_poolmanager(*args, **kwargs)

    def proxy_manager_for(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["ssl_context"] = self._ssl_context
        return super().proxy_manager_for(*args, **kwargs)


@dataclass
class Reply:
    """A successful (2xx or 304) answer."""

    status: int
    data: Any
    headers: dict[str, str]
    latency_seconds: float
    attempts: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


class Transport:
    """JSON over HTTP(S) to one server, with retries.

    ``max_retries`` counts attempts in all (3 → at most two waits). Retried: connection
    errors, timeouts, 5xx, 408 and 429 (``Retry-After`` honoured, capped at
    ``max_retry_delay``). Any other 4xx raises ``ServerError`` at once.
    """

    def __init__(
        self,
        server_url: str,
        *,
        token: str | None = None,
        timeout: float = 5.0,
        max_retries: int = 3,
        initial_retry_delay: float = 1.0,
        max_retry_delay: float = 60.0,
        tls_verify: bool = True,
        ca_file: str | None = None,
        user_agent: str = "beacon-sdk",
        stop_event: threading.Event | None = None,
    ) -> None:
        self.server_url = server_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.max_retries = max(1, int(max_retries))
        self.initial_retry_delay = initial_retry_delay
        self.max_retry_delay = max_retry_delay
        self.stop_event = stop_event or threading.Event()
        self._rng = random.Random()
        self._lock = threading.Lock()
        self.session = requests.Session()
        # requests passes `verify` on to urllib3 as ca_certs/cert_reqs; keep both in step
        # with the SSL context of the adapter. It is also given on every request, because
        # a session-level value loses to REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE in the env.
        self._verify: bool | str = (ca_file or True) if tls_verify else False
        self.session.verify = self._verify
        self.session.mount("https://", TLSAdapter(tls_verify, ca_file))
        self.session.headers["User-Agent"] = user_agent
        self.session.headers["Accept"] = "application/json"

    def close(self) -> None:
        self.session.close()

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        headers.update(extra or {})
        return headers

    def attempt(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """One HTTP attempt; raises NetworkError, ServerError or ParseError."""
        url = self.server_url + path
        data = None if body is None else json.dumps(body, separators=(",", ":"))
        hdrs = self._headers(headers)
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        started = time.perf_counter()
        try:
            # A Session is not documented as thread-safe; the SDK's background thread and
            # a report_now() caller may share it.
            with self._lock:
                resp = self.session.request(
                    method,
                    url,
                    data=data,
                    headers=hdrs,
                    timeout=self.timeout,
                    verify=None if self._verify is True else self._verify,
                    # A redirect is an answer to report, not to follow: following one
                    # would re-send the bearer token and body to wherever it points.
                    allow_redirects=False,
                )
                text = resp.text
        except requests.RequestException as exc:
            log.debug("%s %s failed: %r", method, url, exc)
            raise NetworkError(
                describe_request_error(exc, self.server_url, self.timeout),
                retryable=not isinstance(exc, FINAL_REQUEST_ERRORS),
            ) from exc
        latency = time.perf_counter() - started
        if resp.status_code == 304:
            return Reply(304, None, dict(resp.headers), latency)
        payload: Any = None
        try:
            payload = json.loads(text) if text else None
        except ValueError:
            payload = None
        if not 200 <= resp.status_code < 300:
            raise ServerError(
                resp.status_code,
                text,
                payload,
                parse_retry_after(resp.headers.get("Retry-After")),
            )
        if text and payload is None:
            raise ParseError(f"{method} {url}: response is not JSON: {text[:200]!r}")
        return Reply(resp.status_code, payload, dict(resp.headers), latency)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        max_attempts: int | None = None,
        stop_event: threading.Event | None = None,
    ) -> Reply:
        """``attempt`` with retries and backoff; raises the last error when all fail.

        A wait between attempts ends early (raising the last error) when ``stop_event``
        (default: the transport's) is set.
        """
        attempts = max(1, max_attempts or self.max_retries)
        stop = stop_event or self.stop_event
        started = time.perf_counter()
        for n in range(1, attempts + 1):
            try:
                reply = self.attempt(method, path, body, headers)
                reply.attempts = n
                reply.latency_seconds = time.perf_counter() - started
                return reply
            except ServerError as exc:
                if not exc.retryable or n == attempts:
                    raise
                delay = backoff_delay(n, self.initial_retry_delay, self.max_retry_delay, self._rng)
                if exc.retry_after is not None:
                    delay = min(max(delay, exc.retry_after), self.max_retry_delay)
                err: ReporterError = exc
            except NetworkError as exc:
                if not exc.retryable or n == attempts:
                    raise
                delay = backoff_delay(n, self.initial_retry_delay, self.max_retry_delay, self._rng)
                err = exc
            # Debug only: the caller reports the final outcome in one line.
            log.debug("attempt %d/%d failed (%s); retrying in %.2f s", n, attempts, err, delay)
            if stop.wait(delay):
                raise err
        raise AssertionError("unreachable")
