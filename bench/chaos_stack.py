"""The processes bench/chaos.py runs and breaks: PostgreSQL, Redis (AOF on), gunicorn,
two Celery workers and beat. Loopback only; every wait bounded."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
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


class MemorySampler(threading.Thread):
    """RSS of every process of the stack every `interval` seconds: gunicorn's master and
    each worker, each Celery worker, beat, Redis and PostgreSQL (all its processes).
    A process restarted by a fault shows up under a new pid."""

    def __init__(self, stack: Stack, interval: float, started: float) -> None:
        super().__init__(name="memory-sampler", daemon=True)
        self.stack, self.interval, self.started = stack, interval, started
        self.samples: list[tuple[float, dict[str, tuple[int, float]]]] = []  # t, label->(pid, MB)
        self.stop_event = threading.Event()

    def processes(self) -> dict[str, list[int]]:
        stack = self.stack
        found: dict[str, list[int]] = {}
        if stack.web is not None:
            found["gunicorn master"] = [stack.web.proc.pid]
            for n, pid in enumerate(sorted(stack.gunicorn_worker_pids())):
                found[f"gunicorn worker {n + 1}"] = [pid]
        for worker in stack.workers:
            found[f"celery {worker.name}"] = worker.pids()
        if stack.beat is not None:
            found["celery beat"] = stack.beat.pids()
        proc = stack.redis.proc
        if proc is not None and proc.poll() is None:
            found["redis"] = [proc.pid]
        try:  # pg_ctl daemonizes the postmaster: its pid is in the data directory
            postmaster = int((stack.pg.data / "postmaster.pid").read_text().split()[0])
            found["postgresql (all)"] = [postmaster, *children(postmaster)]
        except (OSError, ValueError, IndexError):
            pass
        return found

    def sample(self) -> None:
        row = {label: (pids[0], rss_mb(pids)) for label, pids in self.processes().items()
               if pids}
        self.samples.append((time.time() - self.started, row))

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.sample()
            self.stop_event.wait(self.interval)

    def flatness(self, after_s: float) -> dict[str, dict[str, float]]:
        """Per process (same pid), over the samples from `after_s` on: first, last, min,
        max and the least-squares slope in MB a minute."""
        result: dict[str, dict[str, float]] = {}
        labels = {label for _, row in self.samples for label in row}
        for label in sorted(labels):
            last_pid = next(row[label][0] for _, row in reversed(self.samples) if label in row)
            points = [(t, row[label][1]) for t, row in self.samples
                      if t >= after_s and label in row and row[label][0] == last_pid]
            if len(points) < 3:
                continue
            mean_t = sum(t for t, _ in points) / len(points)
            mean_m = sum(m for _, m in points) / len(points)
            var = sum((t - mean_t) ** 2 for t, _ in points)
            slope = sum((t - mean_t) * (m - mean_m) for t, m in points) / var if var else 0.0
            values = [m for _, m in points]
            result[label] = {"samples": len(points), "first": values[0], "last": values[-1],
                             "min": min(values), "max": max(values),
                             "slope_mb_per_min": slope * 60}
        return result
