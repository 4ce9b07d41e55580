"""The processes bench/chaos.py runs and breaks: PostgreSQL, Redis (AOF on), gunicorn,
two Celery workers and beat. Loopback only; every wait bounded."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from bench.pulse_stack import ROOT, VENV_BIN, Gunicorn, children
from tests.support.servers import PostgresServer, RedisServer, wait_for_port


class AofRedis(RedisServer):
    """RedisServer with a chosen appendfsync, a graceful restart and a crash."""

    def __init__(self, appendfsync: str = "everysec") -> None:
        super().__init__()
        self.appendfsync = appendfsync

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", self.appendfsync, "--dir",
             str(self.root), "--daemonize", "no", "--protected-mode", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)

    def crash(self) -> None:
        """SIGKILL: what the AOF had not fsynced is gone."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class Celery:
    """`celery -A worker worker|beat` with its own log; SIGKILL or SIGTERM on demand."""

    def __init__(self, kind: str, env: dict[str, str], workdir: Path, name: str) -> None:
        self.kind, self.env, self.workdir, self.name = kind, env, workdir, name
        self.proc: subprocess.Popen | None = None
        self.log_path = workdir / f"celery-{name}.log"

    def start(self, timeout: float = 60.0) -> Celery:
        args = [str(VENV_BIN / "celery"), "-A", "worker", self.kind, "--loglevel=INFO"]
        if self.kind == "worker":
            args += ["--pool=solo", "--without-gossip", "--without-mingle",
                     "--without-heartbeat", f"--hostname={self.name}@%h"]
        else:
            args += ["--schedule", str(self.workdir / f"beat-{time.monotonic_ns()}")]
        log = open(self.log_path, "a")  # noqa: SIM115 (the child writes it)
        self.proc = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        marker = "ready." if self.kind == "worker" else "beat: Starting"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker in self.log_path.read_text(errors="replace"):
                return self
            time.sleep(0.2)
        raise RuntimeError(f"celery {self.name} did not start")

    def flushes_in_flight(self) -> int:
        """flush_metrics tasks this worker received and has not finished (its log)."""
        received = finished = 0
        for line in self.log_path.read_text(errors="replace").splitlines():
            if "worker.tasks.flush_metrics[" not in line:
                continue
            if line.rstrip().endswith("received"):
                received += 1
            elif " succeeded in " in line or " retry: " in line or " raised " in line:
                finished += 1
        return received - finished

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def pids(self) -> list[int]:
        if not self.proc or self.proc.poll() is not None:
            return []
        return [self.proc.pid, *children(self.proc.pid)]


class Stack:
    """Everything one chaos run needs, started in order and stopped in reverse."""

    def __init__(self, workdir: Path, appendfsync: str, gunicorn_workers: int = 2) -> None:
        self.workdir = workdir
        self.pg = PostgresServer()
        self.redis = AofRedis(appendfsync)
        self.gunicorn_workers = gunicorn_workers
        self.env: dict[str, str] = {}
        self.web: Gunicorn | None = None
        self.workers: list[Celery] = []
        self.beat: Celery | None = None

    def start(self, secret: str) -> None:
        self.pg.start()
        self.redis.start()
        database = self.pg.create_database("pulse_chaos")
        self.env = {**os.environ, "DATABASE_URL": database, "REDIS_URL": self.redis.url,
                    "SECRET_KEY": secret, "PULSE_FLUSH_CLAIM_IDLE_SECONDS": "15",
                    "PROMETHEUS_MULTIPROC_DIR": str(self.workdir / "prom"),
                    "PYTHONUNBUFFERED": "1"}
        (self.workdir / "prom").mkdir(exist_ok=True)
        done = subprocess.run([str(VENV_BIN / "flask"), "--app", "wsgi", "db", "upgrade"],
                              cwd=ROOT, env=self.env, capture_output=True, text=True,
                              timeout=180)
        if done.returncode != 0:
            raise RuntimeError(f"db upgrade failed:\n{done.stdout}{done.stderr}")
        from bench.pulse_stack import free_port

        self.web = Gunicorn("wsgi:app", free_port(), self.env, self.gunicorn_workers,
                            self.workdir / "gunicorn.log")
        self.web.wait_ready()
        self.workers = [Celery("worker", self.env, self.workdir, f"w{i}").start()
                        for i in range(2)]
        self.beat = Celery("beat", self.env, self.workdir, "beat").start()

    def stop(self) -> None:
        for process in [self.beat, *self.workers]:
            if process is not None:
                process.stop()
        if self.web is not None:
            self.web.stop()
        self.redis.cleanup()
        self.pg.cleanup()

    def gunicorn_worker_pids(self) -> list[int]:
        return children(self.web.proc.pid) if self.web else []


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024
