"""Closed-loop HTTP load on 127.0.0.1: `wrk` with a Lua script when installed (preferred:
the machine has 2 cores and wrk costs far less CPU per request than any Python client),
else a multi-process asyncio client (keep-alive, reconnecting whenever the server closes,
as gunicorn's sync workers do after every answer).

Both cycle through a pool of pre-built POST requests (token + JSON body per line), so the
points sent vary, and both stop at `duration_s` or `max_requests`, whichever comes first.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

LUA_SCRIPT = r"""
local pool_path = os.getenv("BENCH_POOL")
local per_thread_max = tonumber(os.getenv("BENCH_MAX_PER_THREAD"))
local threads = {}
local reqs = {}
local counter = 0
answered = 0
bad = 0

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_no", #threads)
end

function init(args)
  local f = assert(io.open(pool_path, "r"))
  for line in f:lines() do
    local token, body = line:match("^([^\t]*)\t(.*)$")
    local headers = {["Content-Type"] = "application/json"}
    if token ~= "" then headers["Authorization"] = "Bearer " .. token end
    reqs[#reqs + 1] = wrk.format("POST", nil, headers, body)
  end
  f:close()
  counter = (thread_no or 1) * 7
end

function request()
  counter = counter + 1
  return reqs[(counter % #reqs) + 1]
end

function response(status, headers, body)
  answered = answered + 1
  if status ~= 200 then bad = bad + 1 end
  if answered >= per_thread_max then wrk.thread:stop() end
end

function done(summary, latency, requests)
  local non200 = 0
  for _, t in ipairs(threads) do non200 = non200 + (t:get("bad") or 0) end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "non200": %d, "socket_errors": %d, '
    .. '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, non200,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


@dataclass
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    non200: int
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def write_pool(path: Path, items: list[tuple[str, bytes]]) -> None:
    """One request a line: `token<TAB>json body` (bodies are compact JSON, no newlines)."""
    with open(path, "wb") as f:
        for token, body in items:
            f.write(token.encode() + b"\t" + body + b"\n")


def run(url: str, pool: Path, connections: int, duration_s: float, max_requests: int,
        client: str = "wrk", threads: int = 2) -> LoadResult:
    if client == "wrk":
        return _run_wrk(url, pool, connections, duration_s, max_requests, threads)
    return _run_python(url, pool, connections, duration_s, max_requests, threads)


def _run_wrk(url: str, pool: Path, connections: int, duration_s: float, max_requests: int,
             threads: int) -> LoadResult:
    threads = max(1, min(threads, connections))
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(LUA_SCRIPT)
    env = dict(os.environ, BENCH_POOL=str(pool),
               BENCH_MAX_PER_THREAD=str(max(1, max_requests // threads)))
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration_s:g}s",
           "--timeout", "10s", "-s", script.name, url]
    try:
        out = subprocess.run(cmd, env=env, capture_output=True, text=True,
                             timeout=duration_s + 60)
    finally:
        os.unlink(script.name)
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH_RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result:\n{out.stdout}\n{out.stderr}")
    data = json.loads(line.removeprefix("BENCH_RESULT "))
    return LoadResult(data["requests"], data["duration_us"] / 1e6, data["p50_us"] / 1000,
                      data["p99_us"] / 1000, data["non200"], data["socket_errors"])


# --- Python fallback: P processes x (connections / P) asyncio keep-alive connections ---

def _load_pool(pool: Path, host: str, port: int, path: str) -> list[bytes]:
    requests = []
    with open(pool, "rb") as f:
        for line in f:
            token, _, body = line.rstrip(b"\n").partition(b"\t")
            head = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}",
                    "Content-Type: application/json", f"Content-Length: {len(body)}"]
            if token:
                head.append(f"Authorization: Bearer {token.decode()}")
            requests.append(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    return requests


async def _connection(host, port, requests, offset, deadline, budget, latencies, stats):
    """One client connection; reconnects whenever the server closes (gunicorn's sync
    workers answer `Connection: close`), as wrk does. Connect time is not counted."""
    i = offset
    reader = writer = None
    try:
        while time.monotonic() < deadline and budget[0] > 0:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            budget[0] -= 1
            started = time.perf_counter()
            writer.write(requests[i % len(requests)])
            i += 1
            head = await reader.readuntil(b"\r\n\r\n")
            length, close = 0, False
            for header in head.split(b"\r\n")[1:]:
                name, _, value = header.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 200"):
                stats["non200"] += 1
            if close:
                writer.close()
                reader = writer = None
    except (OSError, asyncio.IncompleteReadError):
        stats["errors"] += 1
    finally:
        if writer is not None:
            writer.close()


def _worker(url, pool, connections, duration_s, max_requests, start_at, seed, queue) -> None:
    parts = urlsplit(url)
    requests = _load_pool(pool, parts.hostname, parts.port, parts.path)

    async def main():
        await asyncio.sleep(max(0.0, start_at - time.time()))
        deadline = time.monotonic() + duration_s
        latencies: list[float] = []
        stats = {"non200": 0, "errors": 0}
        budget = [max_requests]
        began = time.perf_counter()
        await asyncio.gather(*(
            _connection(parts.hostname, parts.port, requests, seed * 1000 + c * 7, deadline,
                        budget, latencies, stats) for c in range(connections)))
        return latencies, stats, time.perf_counter() - began

    latencies, stats, seconds = asyncio.run(main())
    queue.put((latencies, stats, seconds))


def _run_python(url: str, pool: Path, connections: int, duration_s: float, max_requests: int,
                processes: int) -> LoadResult:
    processes = max(1, min(processes, connections))
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    start_at = time.time() + 1.0  # every process starts loading at once, after spawning
    workers = [ctx.Process(target=_worker, args=(
        url, pool, connections // processes + (i < connections % processes), duration_s,
        max_requests // processes, start_at, i, queue)) for i in range(processes)]
    for w in workers:
        w.start()
    results = [queue.get(timeout=duration_s + 60) for _ in workers]
    for w in workers:
        w.join(10)
    latencies = sorted(x for r in results for x in r[0])
    seconds = max(r[2] for r in results)
    if not latencies:
        raise RuntimeError("the Python client completed no request")

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    return LoadResult(len(latencies), seconds, pct(0.50), pct(0.99),
                      sum(r[1]["non200"] for r in results), sum(r[1]["errors"] for r in results))
