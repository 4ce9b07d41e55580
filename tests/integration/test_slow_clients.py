"""Slow clients cannot take the API down (issue 14), on real gunicorn with gunicorn.conf.py.

Before: with sync workers, five connections that sent half a body made /healthz time out
for 30 s until gunicorn killed every worker.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.integration.conftest import ROOT
from tests.support.servers import free_port, wait_for_port

pytestmark = pytest.mark.integration
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))


@pytest.fixture
def gunicorn(pg_app, server_env, tmp_path):
    """Start `gunicorn -c gunicorn.conf.py` with extra environment; stopped at the end."""
    started = []

    def start(workers: int, **env: str) -> str:
        port = free_port()
        log = open(tmp_path / f"gunicorn-{port}.log", "w")  # noqa: SIM115 (child's)
        proc = subprocess.Popen(
            [GUNICORN, "-c", str(ROOT / "gunicorn.conf.py"), "-w", str(workers), "-b",
             f"127.0.0.1:{port}", "wsgi:app"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, **server_env, **env}, start_new_session=True)
        started.append(proc)
        wait_for_port(port)
        address = f"127.0.0.1:{port}"
        for _ in range(workers * 4):  # every worker booted and serving
            healthz_seconds(address)
        return address

    yield start
    for proc in started:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def half_body(address: str) -> socket.socket:
    host, port = address.split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    # The login reads its body before anything else (a view that answers 401 first
    # leaves the body to gunicorn's own drain, bounded at 5 s).
    sock.sendall(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: "
                 b"application/json\r\nContent-Length: 1000\r\n\r\n" + b'{"email": "' + b"a" * 400)
    return sock


def half_headers(address: str) -> socket.socket:
    host, port = address.split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    return sock


def healthz_seconds(address: str) -> float:
    started = time.monotonic()
    response = requests.get(f"http://{address}/healthz", timeout=30)
    assert response.status_code == 200
    return time.monotonic() - started


def test_five_slow_bodies_leave_healthz_answering(gunicorn):
    address = gunicorn(workers=2)
    slow = [half_body(address) for _ in range(5)]
    try:
        time.sleep(0.5)  # every slow request is inside the app, reading its body
        timings = [healthz_seconds(address) for _ in range(5)]
        assert max(timings) < 1.0, timings
    finally:
        for sock in slow:
            sock.close()


def test_more_slow_clients_than_threads_hold_a_thread_for_the_read_timeout_only(gunicorn):
    """One worker of 4 threads, 8 stalled clients: each holds a thread for at most
    GUNICORN_READ_TIMEOUT (2 s here), then is answered 408 (stalled body) or closed
    (stalled headers); /healthz waits two such rounds, not for ever."""
    address = gunicorn(workers=1, GUNICORN_THREADS="4", GUNICORN_READ_TIMEOUT="2")
    slow = [half_body(address) for _ in range(4)] + [half_headers(address) for _ in range(4)]
    try:
        time.sleep(0.3)
        assert healthz_seconds(address) < 7.0
        slow[0].settimeout(10)
        answer = slow[0].recv(4096)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b'"ERR_REQUEST_TIMEOUT"' in answer
    finally:
        for sock in slow:
            sock.close()
