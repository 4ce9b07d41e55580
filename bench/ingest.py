"""Heartbeat ingest through gunicorn + real Redis, against a bare Flask JSON POST endpoint
served the same way in the same run (SPEC §9).

    .venv/bin/python bench/ingest.py [--duration 8] [--rounds 3] [--connections 32,128]
                                     [--fresh-nodes 250 | --resend] [--rate-limit 120/minute]

Starts a throwaway PostgreSQL and Redis, migrates, creates an admin (flask CLI) and, through
the API, the nodes (three probes each); serves Pulse (`wsgi:app`) and bench/bare_app.py with
`gunicorn -w 2 -b 127.0.0.1:PORT`; then loads, round by round and interleaved: the bare
endpoint, the bare endpoint plus one pipelined Redis round trip (SPEC §9's second reference)
and `POST /api/v1/beacon/heartbeat` (3 results a heartbeat) at each connection count, and
`POST /api/v1/beacon/heartbeats` (--batch-size heartbeats a request). Every run stops at
--duration seconds or --max-requests, whichever comes first.

--ref REVISION also serves the Pulse of that git revision (same database and Redis) and
loads it in every round with the same kind of load, interleaved: an A/B comparison that
the machine's noise cannot put in two different runs.

The load, by default, is what a fleet sends: every single-heartbeat run has --fresh-nodes
nodes of its own, each sending new heartbeats 30 s apart, so each point is a new live-cache
member and a new pending row; every node sent one heartbeat before (a fleet that has been
reporting: its token and probe set are cached in Redis). --resend is the earlier load: one
node's 60 heartbeats cycled, so after the first cycle Redis already holds every point.
Every batch run has BATCH_NODES nodes of its own, 8 batches each, cycled.

Pulse runs with the SPEC's default configuration, PULSE_NODE_RATE_LIMIT=120/minute (the
limit on), unless --rate-limit says otherwise. The load stays under it as a fleet does: a
single-heartbeat run sends each of its nodes at most FRESH_PER_NODE heartbeats (its pool,
never cycled: a run stops when the pool is spent) after one warm-up heartbeat, and a batch
run spreads its requests over BATCH_NODES nodes. Throughput counts only the requests
answered 200: a 429, answered fast, is not ingest (the non-200 count shows any).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import loadgen
import redis
from ingest_report import report
from pulse_stack import (
    BenchNode,
    Gunicorn,
    create_node_via_api,
    create_nodes_via_api,
    free_port,
    heartbeat,
    http_json,
    migrate_and_create_admin,
    throwaway_servers,
)

SINGLE_POOL = 60
FRESH_PER_NODE = 100  # + 1 warm-up heartbeat: under the default 120/minute per node
BATCH_POOL = 8
BATCH_NODES = 16  # per batch run: ~60 batches/s x 8 s spread to ~30 a node


def compact(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def build_pools(workdir: Path, single) -> dict[str, Path]:
    """The --resend pool: 60 single heartbeats of one node, cycled (and the bare one)."""
    newest = int(time.time() * 1000) - 120_000  # inside the live hour for the whole run
    bare = [("", compact(heartbeat(single.node_id, single.probe_ids, newest - i * 50_000, i)))
            for i in range(SINGLE_POOL)]
    pools = {"bare": bare, "single": [(single.token, body) for _, body in bare]}
    paths = {}
    for name, items in pools.items():
        paths[name] = workdir / f"pool-{name}.txt"
        loadgen.write_pool(paths[name], items)
    return paths


def write_batch_pool(path: Path, nodes, batch_size: int) -> Path:
    """BATCH_POOL batches of batch_size heartbeats for each node, interleaved, cycled by the
    run (a re-sent batch stores nothing twice, as a Beacon's retry)."""
    newest = int(time.time() * 1000) - 120_000
    batches = []
    for k in range(BATCH_POOL):
        for node in nodes:
            items = [heartbeat(node.node_id, node.probe_ids,
                               newest - k * 3_000 - j * (3_000_000 // batch_size), k * 1000 + j)
                     for j in range(batch_size)]
            batches.append((node.token, compact({"heartbeats": items})))
    loadgen.write_pool(path, batches)
    return path


def write_fresh_pool(path: Path, nodes) -> Path:
    """Single heartbeats no earlier request carried: FRESH_PER_NODE per node, 30 s apart
    and ending one minute ago (inside the live hour; ≤ 128 per series keeps listpack),
    interleaved across the nodes as many Beacons would send them. Built just before its
    run, so every point is a new live-cache member and a new row, as in production."""
    newest = int(time.time() * 1000) - 60_000
    items = []
    for j in range(FRESH_PER_NODE):
        for n, node in enumerate(nodes):
            body = heartbeat(node.node_id, node.probe_ids, newest - j * 30_000, j * 7 + n)
            items.append((node.token, compact(body)))
    loadgen.write_pool(path, items)
    return path


def accepted_items(base_url: str) -> float:
    """pulse_heartbeats_total{outcome="accepted"} summed over the gunicorn workers."""
    with urllib.request.urlopen(base_url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    match = re.search(r'^pulse_heartbeats_total\{outcome="accepted"\} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def trim_pending(redis_url: str) -> None:
    """Empty the pending stream between runs as a flush would (none runs here)."""
    with redis.Redis.from_url(redis_url) as client:
        client.xtrim("pulse:pending", maxlen=0, approximate=False)
        client.set("pulse:pending:points", 0)


def redis_cpu_seconds(redis_url: str) -> float:
    with redis.Redis.from_url(redis_url) as client:
        info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def describe_client(client: str, threads: int) -> str:
    if client == "wrk":
        out = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
        version = (out.stdout + out.stderr).split("Copyright")[0].strip()
        return f"{version}, -t{threads}, Lua script cycling a body pool"
    return f"Python asyncio client, {threads} processes, keep-alive"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per configuration")
    parser.add_argument("--connections", default="32,128")
    parser.add_argument("--batch-size", type=int, default=100, help="heartbeats per batch")
    parser.add_argument("--batch-connections", type=int, default=32)
    parser.add_argument("--max-requests", type=int, default=300_000, help="cap per run")
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--threads", type=int, default=0,
                        help="wrk threads / Python processes (default 1 / 2)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--fresh-nodes", type=int, default=250,
                        help="nodes per single-heartbeat run, each sending FRESH_PER_NODE new "
                             "heartbeats (the default load)")
    parser.add_argument("--resend", action="store_true",
                        help="the earlier load instead: one node's 60 heartbeats cycled, so "
                             "most requests re-send a point Redis already holds")
    parser.add_argument("--rate-limit", default="120/minute",
                        help="PULSE_NODE_RATE_LIMIT for Pulse (default: SPEC's default, "
                             "120/minute; 0 = off)")
    parser.add_argument("--ref", metavar="REVISION",
                        help="also serve the Pulse of this git revision (app/ extracted with "
                             "git archive) and load it in every round, interleaved")
    parser.add_argument("--ref-rate-limit", help="its PULSE_NODE_RATE_LIMIT (default: the same)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.resend and args.rate_limit not in ("", "0"):
        parser.error("--resend sends one node's heartbeats thousands of times a minute: "
                     "use it with --rate-limit 0")
    client = args.client if args.client != "auto" else ("wrk" if loadgen.have_wrk() else "python")
    threads = args.threads or (1 if client == "wrk" else 2)
    connections = [int(c) for c in args.connections.split(",")]
    started = time.monotonic()
    load = ("one node re-sending 60 bodies" if args.resend
            else f"fresh points, {args.fresh_nodes} nodes a run")
    print(f"client: {describe_client(client, threads)}; gunicorn -w {args.workers}; "
          f"PULSE_NODE_RATE_LIMIT={args.rate_limit}; load: {load}; "
          f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}; "
          f"Python {platform.python_version()}", flush=True)

    with tempfile.TemporaryDirectory(prefix="pulse-bench-") as tmp, \
            throwaway_servers() as servers:
        workdir = Path(tmp)
        migrate_and_create_admin(servers)
        prom_dir = workdir / "prometheus"
        pulse = Gunicorn("wsgi:app", free_port(), servers.env(
            PROMETHEUS_MULTIPROC_DIR=str(prom_dir), PULSE_NODE_RATE_LIMIT=args.rate_limit),
            args.workers, workdir / "pulse.log")
        bare = Gunicorn("bench.bare_app:app", free_port(), servers.env(), args.workers,
                        workdir / "bare.log")
        ref = serve_ref(args, workdir, servers) if args.ref else None
        try:
            for server in (pulse, bare, ref or bare):
                server.wait_ready()
            single = create_node_via_api(pulse.base_url, "bench-single")
            pools = build_pools(workdir, single)
            pool_for = fresh_pools(args, connections, pulse.base_url, workdir, pools)
            results = measure(args, client, threads, connections, pulse, bare, ref, pool_for,
                              servers.redis_url)
        finally:
            for server in (pulse, bare, ref):
                if server is not None:
                    server.stop()
    report(args, client, threads, connections, results)
    print(f"\ntotal {time.monotonic() - started:.0f} s; load average at the end "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def serve_ref(args, workdir: Path, servers) -> Gunicorn:
    """gunicorn serving --ref's app, wsgi.py and gunicorn.conf.py (the same database and
    Redis: the revisions compared must share the schema)."""
    root = workdir / "ref"
    root.mkdir()
    archive = subprocess.run(["git", "archive", args.ref, "app", "wsgi.py", "gunicorn.conf.py",
                              "celeryconfig.py"], cwd=Path(__file__).resolve().parent.parent,
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    limit = args.ref_rate_limit if args.ref_rate_limit is not None else args.rate_limit
    return Gunicorn("wsgi:app", free_port(), servers.env(
        PROMETHEUS_MULTIPROC_DIR=str(workdir / "prometheus-ref"), PULSE_NODE_RATE_LIMIT=limit),
        args.workers, workdir / "ref.log", root=root)


def warm_up_nodes(base_url: str, nodes) -> None:
    """One heartbeat per node (older than any pool's), so the runs measure known nodes —
    token and probe set cached in Redis, as for a fleet that has been reporting — rather
    than each node's first-ever lookup in PostgreSQL."""
    from concurrent.futures import ThreadPoolExecutor

    oldest = int(time.time() * 1000) - 60_000 - FRESH_PER_NODE * 30_000

    def send(node) -> None:
        status, answer = http_json("POST", base_url + "/api/v1/beacon/heartbeat",
                                   heartbeat(node.node_id, node.probe_ids, oldest, 0),
                                   node.token)
        if status != 200:
            raise RuntimeError(f"warm-up heartbeat refused: {status} {answer}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, nodes))


def fresh_pools(args, connections, base_url: str, workdir: Path, pools: dict[str, Path]):
    """pool_for(kind): the body pool of the next run of that kind. Every batch run, and
    unless --resend every single-heartbeat run, gets nodes of its own (and points nobody
    sent before)."""
    started = time.monotonic()
    batch_groups = [create_nodes_via_api(base_url, f"bench-batch{k}", BATCH_NODES)
                    for k in range(args.rounds + 1)]  # + the warm-up's
    groups = []
    if not args.resend:
        single_runs = args.rounds * (len(connections) * (2 if args.ref else 1)
                                     + (args.batch_connections not in connections))
        warm = 2 if args.ref else 1  # the warm-up runs' nodes
        groups = [create_nodes_via_api(base_url, f"bench-warm{k}", 30) for k in range(warm)] + [
            create_nodes_via_api(base_url, f"bench-run{k}", args.fresh_nodes)
            for k in range(single_runs)]
    everyone = [node for group in groups + batch_groups for node in group]
    warm_up_nodes(base_url, everyone)
    print(f"{len(everyone)} nodes × 3 probes created and warmed in "
          f"{time.monotonic() - started:.0f} s", flush=True)
    used, batches_used = iter(range(len(groups))), iter(range(len(batch_groups)))
    strangers = [BenchNode(str(uuid.uuid4()), "", [str(uuid.uuid4()) for _ in range(3)])
                 for _ in range(args.fresh_nodes)]

    def pool_for(kind: str) -> Path:
        if kind == "batch":
            k = next(batches_used)
            return write_batch_pool(workdir / f"pool-batch-{k}.txt", batch_groups[k],
                                    args.batch_size)
        if args.resend:
            return pools["bare" if kind == "bare_rt" else kind]
        if kind == "bare_rt":  # fresh members for the Redis baseline too
            return write_fresh_pool(workdir / "pool-fresh-bare.txt", strangers)
        if kind not in ("single", "ref"):
            return pools[kind]
        k = next(used)
        return write_fresh_pool(workdir / f"pool-fresh-{k}.txt", groups[k])

    return pool_for


def measure(args, client, threads, connections, pulse, bare, ref, pool_for, redis_url) -> dict:
    urls = {"bare": bare.base_url + "/echo", "bare_rt": bare.base_url + "/echo-redis",
            "single": pulse.base_url + "/api/v1/beacon/heartbeat",
            "batch": pulse.base_url + "/api/v1/beacon/heartbeats"}
    if ref is not None:
        urls["ref"] = ref.base_url + "/api/v1/beacon/heartbeat"
    items_per_request = {"bare": 0, "bare_rt": 0, "single": 1, "ref": 1,
                         "batch": args.batch_size}

    def one(kind: str, conns: int, duration: float) -> dict:
        trim_pending(redis_url)
        server = {"bare": bare, "bare_rt": bare, "ref": ref}.get(kind, pulse)
        is_pulse = server is not bare
        before = accepted_items(server.base_url) if is_pulse else 0.0
        pool = pool_for(kind)
        cap = args.max_requests
        if kind in ("single", "ref") and not args.resend:  # never cycled: each node in its limit
            cap = min(cap, sum(1 for _ in pool.open()))
        cpu0, redis0 = server.cpu_seconds(), redis_cpu_seconds(redis_url)
        result = loadgen.run(urls[kind], pool, conns, duration, cap, client, threads)
        cpu_us = (server.cpu_seconds() - cpu0) / max(1, result.requests) * 1e6
        redis_us = (redis_cpu_seconds(redis_url) - redis0) / max(1, result.requests) * 1e6
        sent = result.requests * items_per_request[kind]
        accepted = accepted_items(server.base_url) - before if is_pulse else 0.0
        # Throughput counts the requests answered 200 only: a fast 429 is not ingest.
        ok_rps = (result.requests - result.non200) / result.seconds if result.seconds else 0.0
        row = {"kind": kind, "connections": conns, "requests": result.requests,
               "seconds": round(result.seconds, 3), "rps": round(ok_rps, 1),
               "all_rps": round(result.rps, 1),
               "p50_ms": round(result.p50_ms, 2), "p99_ms": round(result.p99_ms, 2),
               "non200": result.non200, "socket_errors": result.errors,
               "items_sent": sent, "items_accepted": int(accepted),
               "server_cpu_us": round(cpu_us), "redis_cpu_us": round(redis_us)}
        print(f"  {kind:7} c={conns:<4} {ok_rps:8.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
              f"p99 {result.p99_ms:6.2f} ms  CPU/req: gunicorn {cpu_us:5.0f} µs, redis "
              f"{redis_us:4.0f} µs  non-200 {result.non200}  accepted {int(accepted)}/{sent}",
              flush=True)
        time.sleep(1.0)
        return row

    print("warm-up", flush=True)
    for kind in ("bare", "bare_rt", "single", "batch") + (("ref",) if ref is not None else ()):
        one(kind, 8, 2.0)
    runs = []
    batch_conns = args.batch_connections
    for round_no in range(args.rounds):
        print(f"round {round_no + 1}/{args.rounds}", flush=True)
        order = ("bare", "bare_rt", "single") + (("ref",) if ref is not None else ())
        order = order if round_no % 2 == 0 else order[::-1]
        for conns in connections:
            runs += [one(kind, conns, args.duration) for kind in order]
        if batch_conns not in connections:
            runs.append(one("single", batch_conns, args.duration))
        runs.append(one("batch", batch_conns, args.duration))
    return {"client": client, "threads": threads, "workers": args.workers,
            "load": "resend" if args.resend else f"fresh, {args.fresh_nodes} nodes a run",
            "duration": args.duration, "rounds": args.rounds, "batch_size": args.batch_size,
            "batch_connections": batch_conns, "runs": runs, "ref": args.ref,
            "ref_rate_limit": args.ref_rate_limit if args.ref_rate_limit is not None
            else args.rate_limit}


if __name__ == "__main__":
    sys.exit(main())
