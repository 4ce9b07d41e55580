"""What every probe shares: its spec, a run's result, error codes and sample pacing."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from beacon.stats import RunStats, compute

ERR_CONNECTION_REFUSED = "ERR_CONNECTION_REFUSED"
ERR_CONNECTION_TIMEOUT = "ERR_CONNECTION_TIMEOUT"
ERR_NETWORK_UNREACHABLE = "ERR_NETWORK_UNREACHABLE"
ERR_DNS = "ERR_DNS"
ERR_SOCKET = "ERR_SOCKET"

ProbeKey = tuple[str, str, int]


@dataclass(frozen=True)
class ProbeSpec:
    """One probe as the agent runs it. ``id`` is Pulse's probe id, None until known."""

    type: str  # "TCP" | "UDP"
    target: str
    port: int
    interval_seconds: int = 60
    count: int = 10
    timeout_seconds: float = 5
    id: str | None = None
    enabled: bool = True
    name: str | None = None

    @property
    def key(self) -> ProbeKey:
        # Host names are case-insensitive; Pulse may echo a target in another case.
        return (self.type.upper(), self.target.lower(), int(self.port))

    @property
    def label(self) -> str:
        return f"{self.type} {format_hostport(self.target, self.port)}"

    def declaration(self) -> dict[str, Any]:
        """The body item of ``PUT /api/v1/beacon/probes``."""
        return {
            "type": self.type,
            "target": self.target,
            "port": self.port,
            "interval_seconds": self.interval_seconds,
            "count": self.count,
            "timeout_seconds": self.timeout_seconds,
        }

    def with_id(self, probe_id: str | None) -> ProbeSpec:
        return replace(self, id=probe_id)


def format_hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def utc_iso(epoch_seconds: float) -> str:
    """ISO 8601 UTC with ``Z`` at one-second precision (what Pulse stores per point)."""
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class RunResult:
    """One completed run: the samples (RTT ms or None) and why the lost ones were lost."""

    spec: ProbeSpec
    started_at: float  # epoch seconds
    samples: list[float | None] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    resolve_ms: float | None = None
    address: str | None = None

    @property
    def stats(self) -> RunStats:
        return compute(self.samples)

    @property
    def error(self) -> str | None:
        """The most frequent failure of the run's lost samples (None if none was lost)."""
        if not self.errors:
            return None
        return Counter(self.errors).most_common(1)[0][0]

    def result(self) -> dict[str, Any]:
        """The SPEC §5 result item (without ``probe_id``); stats None when nothing came back."""
        item: dict[str, Any] = {"timestamp": utc_iso(self.started_at)}
        item.update(self.stats.as_result())
        if item["latency_ms"] is None:
            item["latency_ms"] = 0.0  # Pulse requires a number; loss=100 says it all
        item["error"] = self.error
        return item


class Pacer:
    """Paces samples ``spacing`` seconds apart; ``wait_next`` returns False once stopped."""

    def __init__(self, spacing_seconds: float, stop: threading.Event | None) -> None:
        self.spacing = max(0.0, spacing_seconds)
        self.stop = stop or threading.Event()
        self.start = time.monotonic()

    def wait_until(self, index: int) -> bool:
        delay = self.start + index * self.spacing - time.monotonic()
        if delay > 0:
            return not self.stop.wait(delay)
        return not self.stop.is_set()


# Called as each sample completes: (run, sequence number from 0, RTT in ms or None, error
# code or None). Not called for a sample cut short by ``stop``. UDP samples may complete
# out of order.
SampleCallback = Callable[["RunResult", int, float | None, str | None], None]
