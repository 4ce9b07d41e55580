"""Shared by bench/ingest.py and bench/flush.py: throwaway servers, a migrated database, an
admin, gunicorn processes, heartbeat bodies and table printing. Loopback (127.0.0.1) only.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # for tests.support.servers (the repo is not a package)

VENV_BIN = ROOT / ".venv" / "bin"
ADMIN_EMAIL = "bench-admin@pulse.local"
ADMIN_PASSWORD = "bench-password-0123456789"
SECRET_KEY = "bench-secret-key-" + "x" * 40


def iso(ts_ms: int) -> str:
    """Epoch ms as the ISO 8601 UTC form heartbeats carry (millisecond precision, Z)."""
    moment = datetime.fromtimestamp(ts_ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"


def heartbeat(node_id: str, probe_ids: Sequence[str], ts_ms: int, seed: int) -> dict:
    """One heartbeat with a result per probe, values derived from `seed` (deterministic,
    so a re-sent body is the same point and replaces itself)."""
    latencies = [round(5 + (seed * 7 + i * 13) % 400 / 10, 2) for i in range(len(probe_ids))]
    loss = float(seed % 3 * 10)
    jitter = round((seed % 17) / 10, 2)
    return {
        "node_id": node_id, "timestamp": iso(ts_ms),
        "latency_ms": round(sum(latencies) / len(latencies), 2),
        "packet_loss_rate": loss, "jitter_ms": jitter, "config_version": "bench",
        "agent_version": "bench/1", "metadata": {"hostname": "bench-host"},
        # what a Beacon's run reports (SPEC §5): the spread, the counts and the error
        "results": [{"probe_id": p, "latency_ms": lat, "packet_loss_rate": loss,
                     "jitter_ms": jitter, "latency_min_ms": round(lat * 0.9, 2),
                     "latency_median_ms": lat, "latency_p95_ms": round(lat * 1.2, 2),
                     "latency_max_ms": round(lat * 1.3, 2), "latency_variance": 0.5,
                     "sent": 10, "received": 10 - int(loss / 10),
                     "error": "ERR_CONNECTION_TIMEOUT" if loss else None}
                    for p, lat in zip(probe_ids, latencies, strict=True)],
    }


@dataclass
class Servers:
    database_url: str
    redis_url: str

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for Pulse processes (flask CLI, gunicorn) against these servers."""
        env = dict(os.environ)
        env.update({"DATABASE_URL": self.database_url, "REDIS_URL": self.redis_url,
                    "SECRET_KEY": SECRET_KEY, "PULSE_NODE_RATE_LIMIT": "0",
                    "PULSE_EMBEDDED_SCHEDULER": "0"})
        env.update(extra)
        return env


@contextmanager
def throwaway_servers() -> Iterator[Servers]:
    """A fresh PostgreSQL and Redis (tests/support/servers.py), stopped on exit."""
    from tests.support.servers import PostgresServer, RedisServer

    pg, rd = PostgresServer(), RedisServer()
    try:
        pg.start()
        rd.start()
        yield Servers(pg.create_database("pulse_bench"), rd.url)
    finally:
        rd.cleanup()
        pg.cleanup()


def free_port() -> int:
    from tests.support.servers import free_port as pick

    return pick()


def flask_cli(servers: Servers, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run([str(VENV_BIN / "flask"), "--app", "wsgi", *args], cwd=ROOT,
                            env=servers.env(), input=stdin, capture_output=True, text=True,
                            timeout=180)
    if result.returncode != 0:
        raise RuntimeError(f"flask {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def migrate_and_create_admin(servers: Servers) -> None:
    flask_cli(servers, "db", "upgrade")
    flask_cli(servers, "users", "create", ADMIN_EMAIL, "--role", "admin", "--password-stdin",
              stdin=ADMIN_PASSWORD + "\n")


class Gunicorn:
    """`gunicorn -w N -b 127.0.0.1:PORT MODULE:app` (with the project's gunicorn.conf.py)."""

    def __init__(self, target: str, port: int, env: dict[str, str], workers: int = 2,
                 log_path: Path | None = None, root: Path = ROOT) -> None:
        """root: the checkout served (another revision's, extracted: bench/ingest.py --ref)."""
        self.port = port
        self.log = open(log_path or os.devnull, "w")  # noqa: SIM115 (closed in stop)
        cmd = [str(VENV_BIN / "gunicorn"), "-c", str(root / "gunicorn.conf.py"),
               "-w", str(workers), "-b", f"127.0.0.1:{port}", target]
        if root != ROOT:  # its own `app` first, not the editable install's
            env = {**env, "PYTHONPATH": str(root)}
        self.proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, path: str = "/healthz", timeout: float = 60.0) -> None:
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn on {self.port} exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(self.base_url + path, timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # it answers
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"gunicorn on {self.port} not ready after {timeout}s")

    def cpu_seconds(self) -> float:
        """User + system CPU of the master and its workers so far (Linux /proc)."""
        return sum(process_cpu_seconds(pid) for pid in (self.proc.pid, *children(self.proc.pid)))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(25)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def process_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def http_json(method: str, url: str, body=None, token: str | None = None,
              timeout: float = 30.0) -> tuple[int, dict]:
    """A tiny JSON client for the set-up calls (the load itself goes through loadgen)."""
    import urllib.error
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, json.loads(raw) if raw else {}


@dataclass
class BenchNode:
    node_id: str
    token: str
    probe_ids: list[str]


def login(base_url: str) -> str:
    """The admin's bearer token."""
    status, answer = http_json("POST", base_url + "/api/v1/auth/login",
                               {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    if status != 200:
        raise RuntimeError(f"login failed: {status} {answer}")
    return answer["access_token"]


def create_node_via_api(base_url: str, name: str, probes: int = 3,
                        bearer: str | None = None) -> BenchNode:
    """Create a node and `probes` TCP probes through the HTTP API (as the admin)."""
    bearer = bearer or login(base_url)
    status, node = http_json("POST", base_url + "/api/v1/nodes", {"name": name}, bearer)
    if status != 201:
        raise RuntimeError(f"node create failed: {status} {node}")
    probe_ids = []
    for port in range(8000, 8000 + probes):
        status, probe = http_json("POST", base_url + "/api/v1/probes",
                                  {"node_id": node["id"], "type": "TCP",
                                   "target": "192.0.2.10", "port": port}, bearer)
        if status != 201:
            raise RuntimeError(f"probe create failed: {status} {probe}")
        probe_ids.append(probe["id"])
    return BenchNode(node["id"], node["token"], probe_ids)


def create_nodes_via_api(base_url: str, prefix: str, count: int, probes: int = 3,
                         parallel: int = 8) -> list[BenchNode]:
    """`count` nodes with `probes` probes each, created `parallel` at a time."""
    from concurrent.futures import ThreadPoolExecutor

    bearer = login(base_url)
    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(lambda i: create_node_via_api(base_url, f"{prefix}-{i}", probes,
                                                           bearer), range(count)))


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]],
                title: str | None = None) -> str:
    """Print (and return) a Markdown table, so the output pastes into docs/benchmarks.md."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    out = [line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in cells[1:]]
    text = ("\n" + title + "\n\n" if title else "\n") + "\n".join(out)
    print(text, flush=True)
    return text


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"
