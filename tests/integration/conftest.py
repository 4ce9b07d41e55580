"""Real PostgreSQL, real Redis and real Celery worker/beat processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import make_app

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).with_name("celery"))
SECRET = "integration-secret-" + "y" * 32


@pytest.fixture
def pg_url(pg_server):
    return pg_server.create_database("t_" + uuid.uuid4().hex[:12])


@pytest.fixture
def server_env(pg_url, redis_server):
    """The environment every Pulse process of one test shares."""
    prefix = "it" + uuid.uuid4().hex[:8]
    return {
        "DATABASE_URL": pg_url,
        "REDIS_URL": redis_server.url,
        "PULSE_REDIS_PREFIX": prefix,
        "SECRET_KEY": SECRET,
        "PULSE_NODE_RATE_LIMIT": "0",
        "PULSE_FLUSH_CLAIM_IDLE_SECONDS": "3",
    }


@pytest.fixture
def pg_app(server_env):
    """A Pulse app on the test's PostgreSQL database and the real Redis, migrated."""
    from flask_migrate import upgrade

    app = make_app(server_env["DATABASE_URL"], server_env["REDIS_URL"],
                   **{k: v for k, v in server_env.items()
                      if k not in ("DATABASE_URL", "REDIS_URL")})
    with app.app_context():
        upgrade()
    yield app
    with app.app_context():
        from app.extensions import db

        db.session.remove()
        db.engine.dispose()


class CeleryProcess:
    """`celery -A worker worker|beat` as a child process with its own log file."""

    def __init__(self, kind: str, env: dict, workdir: Path) -> None:
        self.kind, self.env, self.workdir = kind, env, workdir
        self.log_path = workdir / f"celery-{kind}-{time.monotonic_ns()}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, ready_timeout: float = 60.0) -> CeleryProcess:
        args = [CELERY, "-A", "worker", self.kind, "--loglevel=INFO"]
        if self.kind == "worker":
            args += ["--pool=solo", "--without-gossip", "--without-mingle",
                     "--without-heartbeat", f"--hostname=it-{uuid.uuid4().hex[:6]}@%h"]
        else:
            args += ["--schedule", str(self.workdir / f"beat-{uuid.uuid4().hex[:6]}")]
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        self._log = open(self.log_path, "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        marker = "ready." if self.kind == "worker" else "beat: Starting"
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if marker in self.log_path.read_text(errors="replace"):
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"celery {self.kind} did not start:\n{self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        if getattr(self, "_log", None):
            self._log.close()


@pytest.fixture
def celery_processes(server_env, tmp_path):
    """Start worker/beat processes on demand; all are stopped at the end of the test."""
    started: list[CeleryProcess] = []

    def start(kind: str) -> CeleryProcess:
        process = CeleryProcess(kind, server_env, tmp_path).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def wait_until(predicate, timeout: float, interval: float = 0.2, message: str = ""):
    """Poll predicate() until it is truthy; bounded by timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s: {message} (last value {last!r})")
