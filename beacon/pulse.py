"""The Beacon-facing Pulse API, over the SDK's transport (same TLS, timeout and retries)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from beacon import __version__
from beacon.probes import ProbeSpec
from beacon.sdk.errors import ParseError
from beacon.sdk.transport import Reply, Transport

log = logging.getLogger("beacon.pulse")

USER_AGENT = f"beacon/{__version__}"


def make_transport(
    server: str,
    token: str | None,
    tls_verify: bool,
    ca_file: str | None,
    stop: threading.Event | None = None,
) -> Transport:
    """SPEC §7 reporting rules: 5 s per attempt, 3 attempts in all, waits 1 s then 2 s."""
    return Transport(
        server,
        token=token,
        timeout=5.0,
        max_retries=3,
        initial_retry_delay=1.0,
        max_retry_delay=60.0,
        tls_verify=tls_verify,
        ca_file=ca_file,
        user_agent=USER_AGENT,
        stop_event=stop,
    )


def probe_from_config(item: dict[str, Any]) -> ProbeSpec:
    """A probe of ``GET /api/v1/beacon/config`` (or of the declaration answer)."""
    return ProbeSpec(
        type=str(item["type"]).upper(),
        target=str(item["target"]),
        port=int(item["port"]),
        interval_seconds=int(item.get("interval_seconds", 60)),
        count=int(item.get("count", 10)),
        timeout_seconds=float(item.get("timeout_seconds", 5)),
        id=str(item["id"]) if item.get("id") is not None else None,
        enabled=bool(item.get("enabled", True)),
        name=item.get("name"),
    )


class PulseClient:
    """Calls of a registered node (bearer = the node token)."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def declare(
        self, probes: list[ProbeSpec], max_attempts: int | None = None
    ) -> tuple[str | None, list[ProbeSpec]]:
        """``PUT /api/v1/beacon/probes``: returns (config_version, probes with ids)."""
        reply = self.transport.request(
            "PUT",
            "/api/v1/beacon/probes",
            {"probes": [p.declaration() for p in probes]},
            max_attempts=max_attempts,
        )
        data = reply.data if isinstance(reply.data, dict) else {}
        try:
            declared = [probe_from_config(item) for item in data.get("probes", [])]
        except (KeyError, TypeError, ValueError) as exc:
            raise ParseError(f"bad probe declaration answer: {exc}") from exc
        version = data.get("config_version")
        return (str(version) if version is not None else None), declared

    def fetch_config(self, etag: str | None = None, max_attempts: int | None = None) -> Reply:
        """``GET /api/v1/beacon/config``; status 304 when ``etag`` still matches."""
        headers = {"If-None-Match": etag} if etag else None
        reply = self.transport.request(
            "GET", "/api/v1/beacon/config", headers=headers, max_attempts=max_attempts
        )
        if reply.status != 304:
            data = reply.data
            if not isinstance(data, dict) or not isinstance(data.get("probes"), list):
                raise ParseError(f"bad config answer: {str(data)[:200]}")
            try:
                reply.extra["probes"] = [probe_from_config(item) for item in data["probes"]]
            except (KeyError, TypeError, ValueError) as exc:
                raise ParseError(f"bad probe in config: {exc}") from exc
        return reply

    def heartbeat(self, heartbeat: dict[str, Any]) -> Reply:
        return self.transport.request("POST", "/api/v1/beacon/heartbeat", heartbeat)

    def heartbeats(
        self, heartbeats: list[dict[str, Any]], max_attempts: int | None = None
    ) -> Reply:
        return self.transport.request(
            "POST",
            "/api/v1/beacon/heartbeats",
            {"heartbeats": heartbeats},
            max_attempts=max_attempts,
        )


def register(
    server: str,
    enroll_token: str,
    name: str,
    metadata: dict[str, Any],
    tls_verify: bool = True,
    ca_file: str | None = None,
) -> dict[str, Any]:
    """``POST /api/v1/beacon/register`` → ``{node_id, token}``."""
    transport = make_transport(server, None, tls_verify, ca_file)
    try:
        reply = transport.request(
            "POST",
            "/api/v1/beacon/register",
            {"enroll_token": enroll_token, "name": name, "metadata": metadata},
        )
    finally:
        transport.close()
    data = reply.data
    if not isinstance(data, dict) or not data.get("node_id") or not data.get("token"):
        raise ParseError(f"bad register answer: {str(data)[:200]}")
    return data
