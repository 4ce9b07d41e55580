"""HeartbeatClient: report an application's config version to Pulse on a timer."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from beacon.sdk import limits, metrics
from beacon.sdk import metadata as md
from beacon.sdk.errors import ParseError, ReporterError
from beacon.sdk.options import FIELD_LIMITS, HeartbeatOptions, generate_instance_id
from beacon.sdk.transport import Transport

__all__ = [
    "HeartbeatClient",
    "HeartbeatClientBuilder",
    "HeartbeatOptions",
    "HeartbeatResponse",
    "generate_instance_id",
]

log = logging.getLogger("beacon.sdk")

UNKNOWN_VERSION = "unknown"


@dataclass(frozen=True)
class HeartbeatResponse:
    """Pulse's answer to a heartbeat."""

    registered: bool
    expected_version: str | None
    drift_detected: bool


class HeartbeatClientBuilder:
    """Fluent construction: ``HeartbeatClient.builder().server_url(…).app(…)….build()``."""

    def __init__(self) -> None:
        self._opts: dict[str, Any] = {"custom_metadata": {}}

    def _set(self, key: str, value: Any) -> HeartbeatClientBuilder:
        self._opts[key] = value
        return self

    def server_url(self, url: str) -> HeartbeatClientBuilder:
        return self._set("server_url", url)

    def app(self, app: str) -> HeartbeatClientBuilder:
        return self._set("app", app)

    def profile(self, profile: str) -> HeartbeatClientBuilder:
        return self._set("profile", profile)

    def token(self, token: str) -> HeartbeatClientBuilder:
        return self._set("token", token)

    def instance_id(self, instance_id: str) -> HeartbeatClientBuilder:
        return self._set("instance_id", instance_id)

    def interval(self, seconds: float) -> HeartbeatClientBuilder:
        return self._set("interval", seconds)

    def timeout(self, seconds: float) -> HeartbeatClientBuilder:
        return self._set("timeout", seconds)

    def max_retries(self, attempts: int) -> HeartbeatClientBuilder:
        return self._set("max_retries", attempts)

    def initial_retry_delay(self, seconds: float) -> HeartbeatClientBuilder:
        return self._set("initial_retry_delay", seconds)

    def max_retry_delay(self, seconds: float) -> HeartbeatClientBuilder:
        return self._set("max_retry_delay", seconds)

    def metadata(self, key: str, value: str) -> HeartbeatClientBuilder:
        """Add one custom label (sent in the heartbeat's ``metadata``)."""
        self._opts["custom_metadata"][str(key)] = str(value)
        return self

    def health(self, health: str) -> HeartbeatClientBuilder:
        return self._set("health", health)

    def ca_file(self, path: str) -> HeartbeatClientBuilder:
        return self._set("ca_file", path)

    def tls_verify(self, verify: bool) -> HeartbeatClientBuilder:
        return self._set("tls_verify", verify)

    def disable_auto_detect(self) -> HeartbeatClientBuilder:
        """Send only custom metadata: no hostname/IP/region/Kubernetes detection."""
        return self._set("auto_detect_metadata", False)

    def build(self) -> HeartbeatClient:
        """Validate and build; raises ``ConfigError`` naming the missing field."""
        return HeartbeatClient(**self._opts)


class HeartbeatCore:
    """What the sync and async clients share: payload, transport, state."""

    def __init__(self, opts: HeartbeatOptions, stop_event: threading.Event) -> None:
        self.opts = opts
        self._version = UNKNOWN_VERSION
        self.last_response: HeartbeatResponse | None = None
        self.last_error: ReporterError | None = None
        self._meta: md.InstanceMetadata | None = None
        # The last drift state logged (None: nothing answered yet), so a warning is
        # logged when drift starts or ends, not on every heartbeat.
        self._drift_logged: tuple[bool, str, str | None] | None = None
        self.transport = Transport(
            opts.server_url,
            token=opts.token,
            timeout=opts.timeout,
            max_retries=opts.max_retries,
            initial_retry_delay=opts.initial_retry_delay,
            max_retry_delay=opts.max_retry_delay,
            tls_verify=opts.tls_verify,
            ca_file=opts.ca_file,
            user_agent="beacon-sdk/0.1",
            stop_event=stop_event,
        )
        self.path = (
            f"/api/drift/heartbeat/{quote(opts.app, safe='')}/{quote(opts.profile, safe='')}"
        )

    @property
    def config_version(self) -> str:
        return self._version

    def set_config_version(self, version: str) -> None:
        self._version = str(version)

    def payload(self) -> dict[str, Any]:
        if self._meta is None:  # detected once, lazily, off the caller's start() path
            self._meta = md.collect(self.opts.custom_metadata, self.opts.auto_detect_metadata)
        meta = self._meta
        labels = dict(meta.custom)
        if meta.app_version and "app_version" not in labels:
            labels["app_version"] = meta.app_version
        fields = {
            "instance_id": self.opts.instance_id,
            "hostname": meta.hostname,
            "ip_address": meta.ip_address,
            "region": meta.region,
            "kubernetes_pod": meta.kubernetes_pod,
            "kubernetes_namespace": meta.kubernetes_namespace,
            "health": self.opts.health,
        }
        # Trimmed to Pulse's limits (SPEC §5), so a long or odd label never costs the
        # heartbeat a 400.
        payload: dict[str, Any] = {
            name: limits.clean_optional(value, FIELD_LIMITS[name]) for name, value in fields.items()
        }
        payload["config_version"] = limits.clean_text(self._version, limits.MAX_VERSION_CHARS)
        payload["metadata"] = limits.trim_metadata(labels)
        return payload

    def send(self, stop_event: threading.Event | None = None) -> HeartbeatResponse:
        """One heartbeat with retries; ``stop_event`` cuts a retry wait short."""
        started = time.perf_counter()
        try:
            reply = self.transport.request("POST", self.path, self.payload(), stop_event=stop_event)
            data = reply.data
            if not isinstance(data, dict) or not isinstance(data.get("drift_detected"), bool):
                raise ParseError(f"unexpected heartbeat response: {str(data)[:200]}")
            expected = data.get("expected_version")
            response = HeartbeatResponse(
                registered=bool(data.get("registered", False)),
                expected_version=expected if isinstance(expected, str) else None,
                drift_detected=data["drift_detected"],
            )
        except ReporterError as exc:
            self.last_error = exc
            metrics.record(False, time.perf_counter() - started, None, self.opts.enable_metrics)
            raise
        self.last_response, self.last_error = response, None
        metrics.record(
            True, time.perf_counter() - started, response.drift_detected, self.opts.enable_metrics
        )
        self._log_drift_change(response)
        return response

    def _log_drift_change(self, response: HeartbeatResponse) -> None:
        """A warning when drift starts, changes versions or ends; silence in between."""
        drifted = response.drift_detected
        current = (drifted, self._version, response.expected_version if drifted else None)
        previous, self._drift_logged = self._drift_logged, current
        if current == previous or (previous is None and not drifted):
            return
        who = f"{self.opts.app}/{self.opts.profile} instance {self.opts.instance_id}"
        if drifted:
            log.warning(
                "config drift: %s runs %s, expected %s",
                who,
                self._version,
                response.expected_version,
            )
        elif previous is not None and previous[0]:
            log.warning("config back in line: %s runs %s as expected", who, self._version)


class HeartbeatClient:
    """Reports heartbeats for one application instance from a daemon thread.

    ``HeartbeatClient(server_url=…, app=…, profile=…, **options)`` or
    ``HeartbeatClient.builder()…build()``; both raise ``ConfigError`` for a bad setting.
    Options (durations in float seconds): ``token``, ``instance_id``, ``interval`` (30),
    ``timeout`` (5), ``max_retries`` (3 attempts in all), ``initial_retry_delay`` (1),
    ``max_retry_delay`` (60), ``custom_metadata``, ``auto_detect_metadata`` (True),
    ``health``, ``tls_verify``, ``ca_file``, ``enable_metrics``.
    """

    def __init__(
        self,
        server_url: str | None = None,
        app: str | None = None,
        profile: str | None = None,
        **options: Any,
    ) -> None:
        opts = HeartbeatOptions.from_keywords(server_url, app, profile, options)
        # One stop event per start(): it ends that thread's loop and cuts its retry waits
        # short. report_now() does not use it, so after stop() it still gets its retries.
        self._stop = threading.Event()
        self._stop.set()
        self._core = HeartbeatCore(opts, threading.Event())
        self._thread: threading.Thread | None = None
        self._state_lock = threading.Lock()

    @staticmethod
    def builder() -> HeartbeatClientBuilder:
        """A fluent builder; call ``build()`` at the end."""
        return HeartbeatClientBuilder()

    @property
    def options(self) -> HeartbeatOptions:
        return self._core.opts

    @property
    def instance_id(self) -> str:
        """This instance's id; when not given, ``<hostname>-<8 chars>`` derived from the
        hostname, app and profile (the same after a restart)."""
        return self._core.opts.instance_id

    @property
    def config_version(self) -> str:
        """The version last set with ``set_config_version``; ``"unknown"`` until then."""
        return self._core.config_version

    @property
    def is_running(self) -> bool:
        """True between ``start()`` and ``stop()``."""
        thread = self._thread
        return thread is not None and thread.is_alive() and not self._stop.is_set()

    @property
    def last_response(self) -> HeartbeatResponse | None:
        """The last successful answer, if any."""
        return self._core.last_response

    def set_config_version(self, version: str) -> None:
        """Set the config version sent from the next heartbeat on."""
        self._core.set_config_version(version)

    def report_now(self) -> HeartbeatResponse:
        """Send one heartbeat now, synchronously (with retries).

        Returns the parsed response; raises ``NetworkError``, ``ServerError`` or
        ``ParseError`` (all ``ReporterError``) when it cannot be delivered.
        """
        return self._core.send()

    def start(self) -> None:
        """Send a heartbeat at once, then every ``interval``, from a daemon thread.

        Returns immediately; delivery errors are logged, never raised. Idempotent.
        """
        with self._state_lock:
            if self.is_running:
                return
            self._stop = threading.Event()  # a thread from an earlier start keeps its own
            self._thread = threading.Thread(
                target=self._run,
                args=(self._stop,),
                name=f"heartbeat-{self._core.opts.app}",
                daemon=True,
            )
            self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop reporting and join the thread; prompt even in the middle of a wait.

        A request already on the wire finishes first (bounded by ``timeout`` seconds,
        default the HTTP timeout plus one second).
        """
        with self._state_lock:
            self._stop.set()
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(self._core.opts.timeout + 1.0 if timeout is None else timeout)

    def close(self) -> None:
        """Stop and release the HTTP session."""
        self.stop()
        self._core.transport.close()

    def __enter__(self) -> HeartbeatClient:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, stop: threading.Event) -> None:
        interval = self._core.opts.interval
        while not stop.is_set():
            try:
                self._core.send(stop)
            except ReporterError as exc:
                log.warning("heartbeat not delivered: %s", exc)
            except Exception:  # never let the reporting thread die silently
                log.exception("heartbeat failed unexpectedly")
            if stop.wait(interval):
                break
