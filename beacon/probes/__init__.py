"""Probe engines (TCP connect and UDP echo) and the types they share."""

from __future__ import annotations

import threading

from beacon.probes.base import (
    ERR_CONNECTION_REFUSED,
    ERR_CONNECTION_TIMEOUT,
    ERR_DNS,
    ERR_NETWORK_UNREACHABLE,
    ERR_SOCKET,
    Pacer,
    ProbeKey,
    ProbeSpec,
    RunResult,
    SampleCallback,
    format_hostport,
    utc_iso,
)

__all__ = ["ERR_CONNECTION_REFUSED", "ERR_CONNECTION_TIMEOUT", "ERR_DNS",
           "ERR_NETWORK_UNREACHABLE", "ERR_SOCKET", "Pacer", "ProbeKey", "ProbeSpec",
           "RunResult", "SampleCallback", "format_hostport", "run_probe", "utc_iso"]


def run_probe(
    spec: ProbeSpec,
    spacing_seconds: float = 1.0,
    stop: threading.Event | None = None,
    on_sample: SampleCallback | None = None,
) -> RunResult:
    """Run one probe run of ``spec.count`` samples; never raises for network errors."""
    if spec.type == "TCP":
        from beacon.probes.tcp import tcp_run

        return tcp_run(spec, spacing_seconds, stop, on_sample)
    if spec.type == "UDP":
        from beacon.probes.udp import udp_run

        return udp_run(spec, spacing_seconds, stop, on_sample)
    raise ValueError(f"unknown probe type {spec.type!r}")
