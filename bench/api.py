"""Configuration API latency and throughput through gunicorn, against `GET /healthz` served
by the same gunicorn in the same run (SPEC §9: p95 ≤ 200 ms, p99 ≤ 500 ms; aim p99 ≤ 50 ms
at 32 connections).

    .venv/bin/python bench/api.py [--requests 2000] [--connections 32] [--rounds 2]

Starts a throwaway PostgreSQL and Redis (tests/support/servers.py), migrates with
`flask db upgrade`, creates an operator (`flask users create`), serves `wsgi:app` with
`gunicorn -c gunicorn.conf.py -w 2`, and seeds through the API a node with 50 probes. Then,
round by round, it sends a bounded number of requests per endpoint from --connections
concurrent clients:

* `GET /healthz` — the baseline: same server, no auth, no database;
* `GET /api/v1/probes` — list (first page of 50), operator login token;
* `GET /api/v1/probes` — the same with an operator API token;
* `GET /api/v1/probes/{id}` — cycling over the 50 probes;
* `POST /api/v1/probes` — a new probe each time (distinct ports), so all are 201.

A login access token costs one database read per request (the user's role is read at each
request so a demotion takes effect at once); an API token also one (by hash) plus, at most
once a minute, a `last_used_at` write. Both are part of what is measured.

The client is dependency-free: asyncio over raw sockets in two processes, one request per
TCP connection (gunicorn's sync workers close the connection after each answer, so a
keep-alive client would reconnect anyway). It shares the 2 cores with gunicorn, PostgreSQL
and Redis — hence the baseline in the same run: read the ratios, not the absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pulse_stack import (  # noqa: E402 (bench/ is not a package)
    Gunicorn,
    flask_cli,
    free_port,
    http_json,
    print_table,
    throwaway_servers,
    verdict,
)

OPERATOR_EMAIL = "bench-operator@pulse.local"
OPERATOR_PASSWORD = "bench-operator-password-0123"
SEED_PROBES = 50
P95_TARGET_MS, P99_TARGET_MS, P99_AIM_MS = 200.0, 500.0, 50.0


# --- the load client -------------------------------------------------------------------------

@dataclass
class Result:
    name: str
    latencies_s: list[float]
    seconds: float
    statuses: dict[int, int]
    errors: int
    server_cpu_s: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies_s)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct_ms(self, q: float) -> float:
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


def raw_request(method: str, path: str, port: int, token: str | None = None,
                body: dict | None = None) -> bytes:
    data = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
    head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close",
            f"Content-Length: {len(data)}"]
    if body is not None:
        head.append("Content-Type: application/json")
    if token:
        head.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + data


async def _one(port: int, request: bytes) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        status_line = await reader.readline()
        await reader.read()  # to EOF: the server closes after the answer
        return int(status_line.split()[1])
    finally:
        writer.close()


def _client_process(port: int, requests: list[bytes], concurrency: int, start_at: float,
                    queue) -> None:
    async def main():
        await asyncio.sleep(max(0.0, start_at - time.time()))
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        errors = 0
        cursor = iter(requests)

        async def lane():
            nonlocal errors
            for request in cursor:  # lanes share one iterator: each request is sent once
                began = time.perf_counter()
                try:
                    status = await _one(port, request)
                except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - began)
                statuses[status] = statuses.get(status, 0) + 1

        began = time.perf_counter()
        await asyncio.gather(*(lane() for _ in range(concurrency)))
        return latencies, statuses, errors, time.perf_counter() - began

    queue.put(asyncio.run(main()))


def load(name: str, port: int, requests: list[bytes], connections: int,
         processes: int = 2) -> Result:
    """Send every request once, `connections` at a time, from `processes` processes."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    start_at = time.time() + 0.5
    shares = [requests[i::processes] for i in range(processes)]
    lanes = [connections // processes + (i < connections % processes) for i in range(processes)]
    workers = [ctx.Process(target=_client_process, args=(port, share, lane, start_at, queue))
               for share, lane in zip(shares, lanes, strict=True)]
    for w in workers:
        w.start()
    parts = [queue.get(timeout=600) for _ in workers]
    for w in workers:
        w.join(10)
    statuses: dict[int, int] = {}
    for part in parts:
        for status, n in part[1].items():
            statuses[status] = statuses.get(status, 0) + n
    return Result(name, [x for p in parts for x in p[0]], max(p[3] for p in parts), statuses,
                  sum(p[2] for p in parts))


# --- set-up ----------------------------------------------------------------------------------

@dataclass
class Seed:
    login_token: str
    api_token: str
    node_id: str
    probe_ids: list[str]


def seed(base_url: str) -> Seed:
    status, answer = http_json("POST", base_url + "/api/v1/auth/login",
                               {"email": OPERATOR_EMAIL, "password": OPERATOR_PASSWORD})
    assert status == 200, (status, answer)
    login = answer["access_token"]
    status, token = http_json("POST", base_url + "/api/v1/api-tokens",
                              {"name": "bench", "role": "operator"}, login)
    assert status == 201, (status, token)
    status, node = http_json("POST", base_url + "/api/v1/nodes", {"name": "bench-node"}, login)
    assert status == 201, (status, node)
    probe_ids = []
    for i in range(SEED_PROBES):
        status, probe = http_json("POST", base_url + "/api/v1/probes", {
            "node_id": node["id"], "type": "TCP" if i % 2 else "UDP",
            "target": f"seed-{i}.example", "port": 443, "name": f"seed {i}"}, login)
        assert status == 201, (status, probe)
        probe_ids.append(probe["id"])
    return Seed(login, token["token"], node["id"], probe_ids)


def endpoint_requests(port: int, s: Seed, count: int, round_no: int) -> dict[str, list[bytes]]:
    create = [raw_request("POST", "/api/v1/probes", port, s.login_token, {
        "node_id": s.node_id, "type": "TCP", "target": f"created-r{round_no}.example",
        "port": i + 1}) for i in range(count)]
    return {
        "GET /healthz (baseline)": [raw_request("GET", "/healthz", port)] * count,
        "GET /api/v1/probes": [raw_request("GET", "/api/v1/probes", port, s.login_token)] * count,
        "GET /api/v1/probes (API token)": [
            raw_request("GET", "/api/v1/probes", port, s.api_token)] * count,
        "GET /api/v1/probes/{id}": [
            raw_request("GET", f"/api/v1/probes/{s.probe_ids[i % len(s.probe_ids)]}", port,
                        s.login_token) for i in range(count)],
        "POST /api/v1/probes": create,
    }


EXPECTED_STATUS = {"POST /api/v1/probes": 201}


# --- main ------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="per endpoint and round")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn -w")
    parser.add_argument("--threads", type=int, default=1,
                        help="GUNICORN_THREADS (> 1 switches gunicorn to its gthread worker)")
    args = parser.parse_args()
    started = time.monotonic()

    print(f"# bench/api.py — {platform.node()} ({os.cpu_count()} CPUs, "
          f"Python {platform.python_version()})", flush=True)
    with throwaway_servers() as servers, tempfile.TemporaryDirectory() as tmp:
        flask_cli(servers, "db", "upgrade")
        flask_cli(servers, "users", "create", OPERATOR_EMAIL, "--role", "operator",
                  "--password-stdin", stdin=OPERATOR_PASSWORD + "\n")
        port = free_port()
        env = servers.env(PROMETHEUS_MULTIPROC_DIR=str(Path(tmp) / "prom"),
                          GUNICORN_THREADS=str(args.threads))
        server = Gunicorn("wsgi:app", port, env, workers=args.workers,
                          log_path=Path(tmp) / "gunicorn.log")
        try:
            server.wait_ready()
            s = seed(server.base_url)
            # Warm-up: every worker has its connections, imports and caches.
            for name, reqs in endpoint_requests(port, s, 100, 0).items():
                if not name.startswith("POST"):
                    load(name, port, reqs, args.connections)
            results: dict[str, list[Result]] = {}
            for round_no in range(1, args.rounds + 1):
                for name, reqs in endpoint_requests(port, s, args.requests, round_no).items():
                    cpu_before = server.cpu_seconds()
                    result = load(name, port, reqs, args.connections)
                    result.server_cpu_s = server.cpu_seconds() - cpu_before
                    results.setdefault(name, []).append(result)
                    print(f"  round {round_no}: {name}: {result.rps:.0f} req/s, "
                          f"p99 {result.pct_ms(0.99):.1f} ms, statuses {result.statuses}, "
                          f"errors {result.errors}", flush=True)
        finally:
            server.stop()
            log = (Path(tmp) / "gunicorn.log").read_text(errors="replace")
            if "Traceback" in log:
                print("gunicorn log has tracebacks:\n" + log[-3000:])

    report(results, args)
    load_avg = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\n{time.monotonic() - started:.0f} s in all; load average now {load_avg}")
    return 0 if all(r.errors == 0 for rs in results.values() for r in rs) else 1


def merged(rs: list[Result]) -> Result:
    statuses: dict[int, int] = {}
    for r in rs:
        for status, n in r.statuses.items():
            statuses[status] = statuses.get(status, 0) + n
    return Result(rs[0].name, [x for r in rs for x in r.latencies_s],
                  sum(r.seconds for r in rs), statuses, sum(r.errors for r in rs),
                  sum(r.server_cpu_s for r in rs))


def report(results: dict[str, list[Result]], args) -> None:
    base = merged(results["GET /healthz (baseline)"])
    rows = []
    worst_p95 = worst_p99 = 0.0
    for name, rs in results.items():
        r = merged(rs)
        expected = EXPECTED_STATUS.get(name, 200)
        wrong = sum(n for status, n in r.statuses.items() if status != expected) + r.errors
        p50, p95, p99 = r.pct_ms(0.50), r.pct_ms(0.95), r.pct_ms(0.99)
        if name != base.name:
            worst_p95, worst_p99 = max(worst_p95, p95), max(worst_p99, p99)
        cpu_ms = 1000 * r.server_cpu_s / r.requests if r.requests else 0.0
        rows.append([name, r.requests, f"{r.rps:.0f}", f"{r.rps / base.rps:.2f}", f"{p50:.1f}",
                     f"{p95:.1f}", f"{p99:.1f}", f"{p99 / base.pct_ms(0.99):.1f}",
                     f"{cpu_ms:.2f}", wrong])
    print_table(["endpoint", "requests", "req/s", "× baseline req/s", "p50 ms", "p95 ms",
                 "p99 ms", "× baseline p99", "gunicorn CPU ms/req", "not 200/201"], rows,
                title=f"Configuration API: gunicorn -w {args.workers} (threads {args.threads}), "
                      f"{args.connections} "
                      f"connections, {args.rounds} rounds × {args.requests} requests "
                      "per endpoint")
    print_table(["target (configuration endpoints, all rounds)", "value", "verdict"], [
        [f"p95 ≤ {P95_TARGET_MS:.0f} ms (seed)", f"{worst_p95:.1f} ms",
         verdict(worst_p95 <= P95_TARGET_MS)],
        [f"p99 ≤ {P99_TARGET_MS:.0f} ms (seed)", f"{worst_p99:.1f} ms",
         verdict(worst_p99 <= P99_TARGET_MS)],
        [f"p99 ≤ {P99_AIM_MS:.0f} ms (our aim)", f"{worst_p99:.1f} ms",
         verdict(worst_p99 <= P99_AIM_MS)],
    ])


if __name__ == "__main__":
    sys.exit(main())
