"""Heartbeat client settings: validation and the default instance id."""

from __future__ import annotations

import hashlib
import math
import string
from dataclasses import dataclass, field
from typing import Any

from beacon.sdk import metadata as md
from beacon.sdk.errors import ConfigError

INSTANCE_ID_ALPHABET = string.digits + string.ascii_lowercase
# Pulse's limits on the drift heartbeat's own fields (characters).
FIELD_LIMITS = {
    "instance_id": 255,
    "hostname": 255,
    "ip_address": 64,
    "region": 64,
    "kubernetes_pod": 255,
    "kubernetes_namespace": 255,
    "health": 32,
}


def generate_instance_id(app: str, profile: str, hostname: str | None = None) -> str:
    """``<hostname>-<8 chars [0-9a-z] of sha256(hostname|app|profile)>`` (SPEC §8).

    Stable across restarts of the same app and profile on the same host, so a restart
    does not leave a stale instance behind in Pulse (the seed's random suffix did).
    """
    host = hostname or md.detect_hostname() or "unknown"
    number = int.from_bytes(hashlib.sha256(f"{host}|{app}|{profile}".encode()).digest(), "big")
    chars = []
    for _ in range(8):
        number, digit = divmod(number, len(INSTANCE_ID_ALPHABET))
        chars.append(INSTANCE_ID_ALPHABET[digit])
    return f"{host}-{''.join(chars)}"


@dataclass
class HeartbeatOptions:
    """Validated client settings; durations are float seconds."""

    server_url: str
    app: str
    profile: str
    token: str | None = None
    instance_id: str = ""
    interval: float = 30.0
    timeout: float = 5.0
    max_retries: int = 3
    initial_retry_delay: float = 1.0
    max_retry_delay: float = 60.0
    custom_metadata: dict[str, str] = field(default_factory=dict)
    auto_detect_metadata: bool = True
    health: str = "healthy"
    tls_verify: bool = True
    ca_file: str | None = None
    enable_metrics: bool = False

    @classmethod
    def from_keywords(
        cls, server_url: str | None, app: str | None, profile: str | None, options: dict[str, Any]
    ) -> HeartbeatOptions:
        """The keyword form of both clients: unknown options are a ConfigError."""
        unknown = set(options) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(sorted(unknown)[0], "unknown option")
        return cls(
            server_url=server_url or "", app=app or "", profile=profile or "", **options
        ).validate()

    def validate(self) -> HeartbeatOptions:
        for name in ("server_url", "app", "profile"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(name)
        if not self.server_url.startswith(("http://", "https://")):
            raise ConfigError(
                "server_url", f"must start with http:// or https://, got {self.server_url!r}"
            )
        for name in ("interval", "timeout", "initial_retry_delay", "max_retry_delay"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value <= 0
            ):
                raise ConfigError(name, f"must be a number of seconds > 0, got {value!r}")
            setattr(self, name, float(value))
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int):
            raise ConfigError("max_retries", f"must be an integer, got {self.max_retries!r}")
        if self.max_retries < 1:
            raise ConfigError("max_retries", f"must be >= 1, got {self.max_retries!r}")
        for name in ("token", "ca_file"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ConfigError(name, f"must be a string, got {value!r}")
        for name in ("instance_id", "health"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(name, f"must be a string, got {getattr(self, name)!r}")
        for name in ("auto_detect_metadata", "tls_verify", "enable_metrics"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(name, f"must be True or False, got {getattr(self, name)!r}")
        if not isinstance(self.custom_metadata, dict):
            raise ConfigError("custom_metadata", f"must be a mapping, got {self.custom_metadata!r}")
        if not self.instance_id:
            self.instance_id = generate_instance_id(self.app, self.profile)
        return self
