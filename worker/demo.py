"""The `make run` demo (SPEC §10): node `demo-local` and a real Beacon probing loopback.

Targets the demo starts itself, on 127.0.0.1 only:
* a TCP listener that accepts and closes (healthy),
* a UDP echo that holds each reply ~20 ms and drops ~10 % of them,
* a closed TCP port: a socket bound but never listening, so every connect is refused
  (100 % loss) and no other program can take the port meanwhile.

The Beacon is `beacon.agent.Agent` itself, in a thread, reporting every 10 s to this
Pulse over HTTP with the node's token (rotated at each start: only its hash is stored).
Its probes run every 60 s (the minimum, SPEC §4); the agent starts each probe's first run
within its first 10 s, so the overview has data within a minute of `make run`.
Embedded mode only, and `PULSE_DEMO=0` turns it off (worker.embedded.serve decides).
"""

from __future__ import annotations

import json
import logging
import random
import socket
import threading
import time
from pathlib import Path

import yaml
from flask import Flask

log = logging.getLogger(__name__)
NODE_NAME = "demo-local"
REPORT_INTERVAL_SECONDS = 10
UDP_DELAY_SECONDS = 0.020
UDP_DROP_RATE = 0.10


class _TcpListener:
    """Accepts and closes every connection (a healthy TCP target)."""

    def __init__(self, port: int = 0) -> None:
        self.sock = socket.create_server(("127.0.0.1", port), backlog=128)
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="demo-tcp", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


class _SlowLossyEcho:
    """A UDP echo holding each reply ~20 ms and dropping ~10 % (user-space netem)."""

    def __init__(self, port: int = 0, seed: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self._random = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="demo-udp", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            if self._random.random() < UDP_DROP_RATE:
                continue
            # Probe samples are 1 s apart: holding the loop 20 ms delays no other reply.
            time.sleep(UDP_DELAY_SECONDS)
            try:
                self.sock.sendto(data, addr)
            except OSError:
                continue

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def _closed_port(port: int = 0) -> socket.socket:
    """A TCP port bound but never listening: connects are refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", port))
    return sock


def _bind_or_any(make, port: int | None):
    """The port used last time when free (the probes keep their ids), else any port."""
    if port:
        try:
            return make(port)
        except OSError:
            pass
    return make(0)


def ensure_demo_node(app: Flask, ports: dict) -> tuple[str, str]:
    """(node id, a fresh token) of `demo-local`, created if missing, with exactly the
    demo's three probes (created through the probe service, so they carry names; a
    probe on an unchanged port keeps its id and its history)."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Node, Probe
    from app.services import nodes as node_service
    from app.services import probes as probe_service

    with app.app_context():
        node = db.session.scalar(select(Node).where(Node.name == NODE_NAME))
        if node is None:
            node, token = node_service.create_node(NODE_NAME, "local",
                                                   {"purpose": "make run demo"})
        else:
            token = node_service.rotate_node_token(node)
        wanted = {(p["type"], p["target"], p["port"]): p for p in demo_probes(ports)}
        existing = db.session.scalars(select(Probe).where(Probe.node_id == node.id)).all()
        for probe in existing:
            if (probe.type, probe.target, probe.port) not in wanted:
                probe_service.delete_probe(probe)
        have = {(p.type, p.target, p.port) for p in existing}
        for key, settings in wanted.items():
            if key not in have:
                probe_service.create_probe({"node_id": node.id, **settings})
        return str(node.id), token


def demo_probes(ports: dict) -> list[dict]:
    common = {"target": "127.0.0.1", "interval_seconds": 60, "count": 5,
              "timeout_seconds": 2, "enabled": True}
    return [
        {"name": "tcp-healthy", "type": "TCP", "port": ports["tcp"], **common},
        {"name": "udp-20ms-10pct-loss", "type": "UDP", "port": ports["udp"], **common},
        {"name": "tcp-closed-port", "type": "TCP", "port": ports["closed"], **common},
    ]


class Demo:
    """The demo's targets and Beacon; start() after the server listens, stop() before
    the final flush."""

    def __init__(self, app: Flask, server_url: str) -> None:
        self.app = app
        self.server_url = server_url
        self.root = Path(app.config.get("PULSE_DEMO_DIR") or Path(app.instance_path) / "demo")
        self.stop_event = threading.Event()
        self.targets: list = []
        self.thread: threading.Thread | None = None

    def _ports(self) -> dict:
        try:
            return json.loads((self.root / "ports.json").read_text())
        except (OSError, ValueError):
            return {}

    def start(self) -> None:
        from beacon.config import load

        self.root.mkdir(parents=True, exist_ok=True)
        last = self._ports()
        tcp = _bind_or_any(_TcpListener, last.get("tcp"))
        udp = _bind_or_any(_SlowLossyEcho, last.get("udp"))
        closed = _bind_or_any(_closed_port, last.get("closed"))
        tcp.start()
        udp.start()
        self.targets = [tcp, udp, closed]
        ports = {"tcp": tcp.port, "udp": udp.port, "closed": closed.getsockname()[1]}
        (self.root / "ports.json").write_text(json.dumps(ports))
        node_id, token = ensure_demo_node(self.app, ports)
        config_path = self.root / "beacon.yaml"
        config_path.write_text(yaml.safe_dump(self.beacon_config(node_id, token),
                                              sort_keys=False))
        config_path.chmod(0o600)  # it holds the node token
        cfg = load(config_path)
        self.thread = threading.Thread(target=self._run_agent, args=(cfg,),
                                       name="demo-beacon", daemon=True)
        self.thread.start()
        log.warning("demo: node %s, Beacon reporting every %d s (PULSE_DEMO=0 turns it off)",
                    NODE_NAME, REPORT_INTERVAL_SECONDS)

    def beacon_config(self, node_id: str, token: str) -> dict:
        """No local probes: the Beacon runs the demo probes Pulse lists for the node."""
        return {"pulse_server": self.server_url, "node_id": node_id, "node_name": NODE_NAME,
                "token": token, "report_interval_seconds": REPORT_INTERVAL_SECONDS,
                "state_dir": "state", "region": "local", "probes": []}

    def _run_agent(self, cfg) -> None:
        from beacon.agent import Agent

        try:
            Agent(cfg, self.stop_event, out=lambda line: log.info("demo beacon: %s", line)).run()
        except Exception:  # the demo must never take Pulse down
            log.exception("demo: the Beacon stopped")

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(15)
        for target in self.targets:
            if isinstance(target, socket.socket):
                target.close()
            else:
                target.stop()
