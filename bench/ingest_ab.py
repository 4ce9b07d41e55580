"""The heartbeat fast path's own CPU, this checkout against another revision, in-process and
interleaved: what bench/ingest.py cannot resolve on a noisy VM (changes of a few per cent).

    .venv/bin/python bench/ingest_ab.py REVISION [--alternations 12] [--chunk 800]

Two worker processes, one with this checkout's app and one with REVISION's (app/ extracted
with git archive; the two must share the schema), each with its own throwaway PostgreSQL and
Redis, 100 nodes of three probes created through its API, and heartbeats as a fleet sends
them (new points, 30 s apart; at most PER_NODE a node, under the SPEC's default rate limit of
120/minute, which is on). Each worker
calls the WSGI app (the fast-path middleware in front of Flask) with the environ gunicorn
would hand it. Chunk by chunk, alternating which worker goes first, each reports the median
thread CPU time of its requests; the script prints both series, their medians and the ratio
(below 1: this checkout is cheaper). Not gunicorn, not Redis's own CPU: those are
bench/ingest.py's.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NODES = 100
PER_NODE = 110
PATH = "/api/v1/beacon/heartbeat"


def worker(chunk_requests: int) -> None:
    """Serve 'run' lines on stdin: each runs the next chunk and prints its median µs."""
    import app  # noqa: F401  (first: the revision's package, from PYTHONPATH)

    sys.path.insert(0, str(HERE))
    import pulse_stack as stack

    with stack.throwaway_servers() as servers:
        stack.migrate_and_create_admin(servers)
        env = servers.env(PULSE_NODE_RATE_LIMIT="120/minute")
        os.environ.update(env)
        from app import create_app
        from app.config import Config

        pulse = create_app(Config(env))
        client = pulse.test_client()
        login = client.post("/api/v1/auth/login", json={"email": stack.ADMIN_EMAIL,
                                                         "password": stack.ADMIN_PASSWORD})
        admin = {"Authorization": f"Bearer {login.get_json()['access_token']}"}
        nodes = []
        for i in range(NODES):
            node = client.post("/api/v1/nodes", json={"name": f"ab-{i}"},
                               headers=admin).get_json()
            probes = [client.post("/api/v1/probes", headers=admin, json={
                "node_id": node["id"], "type": "TCP", "target": "192.0.2.10",
                "port": 8000 + k}).get_json()["id"] for k in range(3)]
            nodes.append((node["id"], node["token"], probes))
        newest = int(time.time() * 1000) - 60_000
        bodies = [(token, json.dumps(stack.heartbeat(node_id, probes,
                                                     newest - (PER_NODE - r) * 30_000, r),
                                     separators=(",", ":")).encode())
                  for r in range(PER_NODE) for node_id, token, probes in nodes]
        statuses: list[str] = []

        def post(token: str, body: bytes) -> None:
            environ = {"REQUEST_METHOD": "POST", "PATH_INFO": PATH, "QUERY_STRING": "",
                       "SCRIPT_NAME": "", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "5000",
                       "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
                       "REMOTE_ADDR": "127.0.0.1", "CONTENT_TYPE": "application/json",
                       "CONTENT_LENGTH": str(len(body)), "HTTP_AUTHORIZATION": "Bearer " + token,
                       "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr}
            b"".join(pulse.wsgi_app(environ, lambda status, headers: statuses.append(status)))
            if not statuses[-1].startswith("200"):
                raise SystemExit(f"heartbeat answered {statuses[-1]}")

        for token, body in bodies[:NODES * 3]:  # warm: every node's token and state cached
            post(token, body)
        import gc

        gc.collect()
        gc.freeze()
        position = NODES * 3
        print("ready", flush=True)
        clock = time.thread_time_ns
        for _line in sys.stdin:
            if position + chunk_requests > len(bodies):
                raise SystemExit("out of heartbeats: fewer alternations or a smaller chunk")
            costs = []
            for token, body in bodies[position:position + chunk_requests]:
                started = clock()
                post(token, body)
                costs.append(clock() - started)
            position += chunk_requests
            print(f"{statistics.median(costs) / 1000:.1f}", flush=True)


def start(root: Path, chunk: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(root)}
    process = subprocess.Popen([sys.executable, str(HERE / "ingest_ab.py"), "--worker",
                                "--chunk", str(chunk)], cwd=root, env=env, text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    line = process.stdout.readline()
    if line.strip() != "ready":
        raise SystemExit(f"the worker of {root} did not start")
    return process


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("revision", nargs="?")
    parser.add_argument("--alternations", type=int, default=12)
    parser.add_argument("--chunk", type=int, default=800, help="heartbeats per chunk")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.chunk)
        return 0
    if not args.revision:
        parser.error("REVISION is required")
    if (args.alternations * args.chunk) > (PER_NODE - 3) * NODES:
        parser.error(f"at most {(PER_NODE - 3) * NODES} heartbeats per worker")
    with tempfile.TemporaryDirectory(prefix="pulse-ab-") as tmp:
        # Both sides are copies, freshly compiled, so that neither runs from a warmer tree.
        ours, ref_root = Path(tmp) / "checkout", Path(tmp) / "revision"
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copytree(HERE.parent / "app", ours / "app", ignore=ignore)
        shutil.copy2(HERE.parent / "wsgi.py", ours / "wsgi.py")
        ref_root.mkdir()
        archive = subprocess.run(["git", "archive", args.revision, "app", "wsgi.py"],
                                 cwd=HERE.parent, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(ref_root)], input=archive, check=True)
        workers = {"this checkout": start(ours, args.chunk),
                   args.revision: start(ref_root, args.chunk)}
        series: dict[str, list[float]] = {name: [] for name in workers}
        names = list(workers)
        for i in range(args.alternations):
            for name in names if i % 2 == 0 else names[::-1]:
                process = workers[name]
                process.stdin.write("run\n")
                process.stdin.flush()
                series[name].append(float(process.stdout.readline()))
        for process in workers.values():
            process.stdin.close()
            process.wait(timeout=120)
    print(f"median thread CPU µs per heartbeat, chunks of {args.chunk}, alternating")
    for name, values in series.items():
        print(f"  {name:>16}: median {statistics.median(values):6.1f}   "
              + " ".join(f"{v:.0f}" for v in values))
    ratio = statistics.median(series[names[0]]) / statistics.median(series[names[1]])
    print(f"this checkout ÷ {args.revision}: {ratio:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
