"""A stand-in Pulse for the Beacon tests: the beacon-facing and drift endpoints.

Small and permissive on purpose — it checks what the Beacon must get right (bearer token,
probe ownership, body shape) and records everything for the assertions.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import threading
import uuid
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class StandInPulse:
    def __init__(self, token: str = "node-token", node_id: str | None = None) -> None:
        self.token = token
        self.node_id = node_id or str(uuid.uuid4())
        self.lock = threading.Lock()
        self.probes: dict[tuple, dict[str, Any]] = {}  # key -> probe (with id, source)
        self.heartbeats: list[dict[str, Any]] = []  # every item stored, in arrival order
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status)
        self.drift_bodies: list[dict[str, Any]] = []
        self.scripted: deque[tuple[int, dict[str, str], Any]] = deque()  # forced answers
        self.reject_batch_index: set[int] = set()
        self.expected_version: str | None = None
        self.server: ThreadingHTTPServer | None = None
        self.port = 0
        self.tls_context = None
        self.connections: set[socket.socket] = set()

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> StandInPulse:
        handler = type("Handler", (_Handler,), {"pulse": self})
        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self.server.daemon_threads = True
        if self.tls_context is not None:
            self.server.socket = self.tls_context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        """Stop like a dead server: listener closed and keep-alive connections cut."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        with self.lock:
            conns, self.connections = list(self.connections), set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    @property
    def url(self) -> str:
        scheme = "https" if self.tls_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    # -- model -------------------------------------------------------------------------
    def add_api_probe(self, **probe: Any) -> dict[str, Any]:
        with self.lock:
            item = {
                "interval_seconds": 60,
                "count": 10,
                "timeout_seconds": 5,
                "enabled": True,
                **probe,
                "id": str(uuid.uuid4()),
                "source": "api",
            }
            self.probes[(item["type"], item["target"].lower(), item["port"])] = item
            return item

    def config_version(self) -> str:
        enabled = sorted(
            json.dumps({k: v for k, v in p.items() if k != "source"}, sort_keys=True)
            for p in self.probes.values()
            if p["enabled"]
        )
        return hashlib.sha256("\n".join(enabled).encode()).hexdigest()[:16]

    def results(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r for hb in self.heartbeats for r in hb.get("results", [])]

    def public_probes(self) -> list[dict[str, Any]]:
        return [{k: v for k, v in p.items() if k != "source"} for p in self.probes.values()]


class _Handler(BaseHTTPRequestHandler):
    pulse: StandInPulse
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def setup(self) -> None:
        super().setup()
        with self.pulse.lock:
            self.pulse.connections.add(self.connection)

    def finish(self) -> None:
        super().finish()
        with self.pulse.lock:
            self.pulse.connections.discard(self.connection)

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        with self.pulse.lock:  # recorded before the client can see the answer
            self.pulse.requests.append((self.command, self.path, status))
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, code: str, message: str = "") -> None:
        self._send(status, {"code": code, "message": message or code, "details": {}})

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw else None

    def _route(self) -> None:
        p = self.pulse
        body = self._body()
        if p.scripted:
            status, headers, answer = p.scripted.popleft()
            self._send(status, answer, headers)
            return
        if self.path == "/api/v1/beacon/register" and self.command == "POST":
            self._send(201, {"node_id": p.node_id, "token": p.token})
            return
        if self.headers.get("Authorization") != f"Bearer {p.token}":
            self._error(401, "ERR_UNAUTHORIZED")
            return
        if self.path.startswith("/api/drift/heartbeat/") and self.command == "POST":
            with p.lock:
                p.drift_bodies.append(body)
                first = len(p.drift_bodies) == 1
            drift = (
                p.expected_version is not None and body.get("config_version") != p.expected_version
            )
            self._send(
                200,
                {
                    "registered": first,
                    "expected_version": p.expected_version,
                    "drift_detected": drift,
                },
            )
        elif self.path == "/api/v1/beacon/probes" and self.command == "PUT":
            self._declare(body)
        elif self.path == "/api/v1/beacon/config" and self.command == "GET":
            version = p.config_version()
            etag = f'"{version}"'
            if self.headers.get("If-None-Match") == etag:
                self._send(304, None, {"ETag": etag})
                return
            self._send(
                200,
                {"node_id": p.node_id, "config_version": version, "probes": p.public_probes()},
                {"ETag": etag},
            )
        elif self.path == "/api/v1/beacon/heartbeat" and self.command == "POST":
            problem = self._check(body)
            if problem:
                self._error(400, problem)
                return
            with p.lock:
                p.heartbeats.append(body)
            self._send(
                200,
                {
                    "status": "success",
                    "message": "Heartbeat received",
                    "timestamp": body["timestamp"],
                    "accepted": len(body["results"]),
                    "config_version": p.config_version(),
                    "drift_detected": body.get("config_version") != p.config_version(),
                },
            )
        elif self.path == "/api/v1/beacon/heartbeats" and self.command == "POST":
            accepted, rejected = 0, []
            for i, item in enumerate(body["heartbeats"]):
                problem = self._check(item) or (
                    "ERR_INVALID_METRICS" if i in p.reject_batch_index else None
                )
                if problem:
                    rejected.append({"index": i, "code": problem, "message": problem})
                    continue
                with p.lock:
                    p.heartbeats.append(item)
                accepted += len(item["results"])
            self._send(
                200,
                {
                    "accepted": accepted,
                    "rejected": rejected,
                    "config_version": p.config_version(),
                    "drift_detected": False,
                },
            )
        else:
            self._error(404, "ERR_NOT_FOUND")

    def _check(self, hb: dict[str, Any]) -> str | None:
        ids = {pr["id"] for pr in self.pulse.probes.values()}
        for key in ("node_id", "timestamp", "latency_ms", "packet_loss_rate", "jitter_ms"):
            if key not in hb:
                return "ERR_VALIDATION"
        if len(hb.get("results", [])) > 1000:  # SPEC §5: at most 1000 results
            return "ERR_VALIDATION"
        for r in hb.get("results", []):
            if r.get("probe_id") not in ids:
                return "ERR_PROBE_NOT_FOUND"
            if any(k.startswith("_") for k in r) or not 0 <= r["packet_loss_rate"] <= 100:
                return "ERR_INVALID_METRICS"
        return None

    def _declare(self, body: dict[str, Any]) -> None:
        p = self.pulse
        with p.lock:
            wanted = {}
            for item in body["probes"]:
                key = (item["type"], item["target"].lower(), item["port"])
                old = p.probes.get(key)
                wanted[key] = {
                    **item,
                    "enabled": True,
                    "source": "beacon",
                    "id": old["id"] if old else str(uuid.uuid4()),
                }
            for key in [k for k, v in p.probes.items() if v["source"] == "beacon"]:
                if key not in wanted:
                    del p.probes[key]
            p.probes.update(wanted)
            answer = {
                "config_version": p.config_version(),
                "probes": [{k: v for k, v in w.items() if k != "source"} for w in wanted.values()],
            }
        self._send(200, answer)

    do_GET = do_POST = do_PUT = _route  # noqa: N815
