"""The tables bench/ingest.py prints (Markdown, to paste into docs/benchmarks.md)."""

from __future__ import annotations

from pulse_stack import median, print_table, verdict

RATIO_TARGET = 0.6
P99_TARGET_MS = 50.0
BATCH_TARGET = 5.0


def _median_of(runs, kind, conns, key) -> float:
    return median([r[key] for r in runs if r["kind"] == kind and r["connections"] == conns])


def report(args, client, threads, connections, results) -> None:
    runs = results["runs"]

    def med(kind, conns, key):
        return round(_median_of(runs, kind, conns, key), 2)  # even counts: a mean of two

    rows = []
    for conns in connections:
        bare_rps, hb_rps = med("bare", conns, "rps"), med("single", conns, "rps")
        ratio = hb_rps / bare_rps if bare_rps else 0.0
        p99 = med("single", conns, "p99_ms")
        ok = ratio >= RATIO_TARGET and (conns != 32 or p99 <= P99_TARGET_MS)
        target = f"ratio ≥ {RATIO_TARGET}" + (f", p99 ≤ {P99_TARGET_MS:g} ms" if conns == 32
                                               else "")
        rows.append([conns, f"{bare_rps:,.0f}", med("bare", conns, "p50_ms"),
                     med("bare", conns, "p99_ms"), f"{hb_rps:,.0f}",
                     med("single", conns, "p50_ms"), p99, f"{ratio:.2f}",
                     f"{med('bare', conns, 'server_cpu_us'):.0f}",
                     f"{med('single', conns, 'server_cpu_us'):.0f}",
                     f"{med('single', conns, 'redis_cpu_us'):.0f}",
                     f"{target}: {verdict(ok)}"])
    print_table(["conns", "bare req/s", "bare p50 ms", "bare p99 ms", "heartbeats/s",
                 "hb p50 ms", "hb p99 ms", "ratio", "bare CPU µs/req", "hb CPU µs/req",
                 "hb Redis CPU µs/req", "target"], rows,
                f"Single heartbeat (3 results) vs bare Flask JSON POST — medians of "
                f"{args.rounds} runs of {args.duration:g} s")

    reference = []
    for conns in connections:
        bare_rps, rt_rps = med("bare", conns, "rps"), med("bare_rt", conns, "rps")
        hb_rps = med("single", conns, "rps")
        reference.append([conns, f"{rt_rps:,.0f}", med("bare_rt", conns, "p99_ms"),
                          f"{rt_rps / bare_rps if bare_rps else 0:.2f}",
                          f"{hb_rps / rt_rps if rt_rps else 0:.2f}",
                          f"{med('bare_rt', conns, 'server_cpu_us'):.0f}",
                          f"{med('bare_rt', conns, 'redis_cpu_us'):.0f}"])
    print_table(["conns", "bare+Redis req/s", "p99 ms", "× bare", "heartbeats/s ÷ it",
                 "CPU µs/req", "Redis CPU µs/req"], reference,
                "SPEC §9's second reference: the bare endpoint plus one pipelined Redis "
                "ZADD + ZREMRANGEBYSCORE + EXPIRE (redis-py), same run")

    conns = results["batch_connections"]
    single_pts = med("single", conns, "rps") * 3
    batch_rps = med("batch", conns, "rps")
    batch_pts = batch_rps * args.batch_size * 3
    factor = batch_pts / single_pts if single_pts else 0.0
    print_table(["endpoint", "conns", "req/s", "points/s", "p50 ms", "p99 ms",
                 "CPU µs/point", "× single", "target"],
                [["/heartbeat (1 × 3 points)", conns, f"{single_pts / 3:,.0f}",
                  f"{single_pts:,.0f}", med("single", conns, "p50_ms"),
                  med("single", conns, "p99_ms"),
                  f"{med('single', conns, 'server_cpu_us') / 3:.0f}", "1.00", ""],
                 [f"/heartbeats ({args.batch_size} × 3 points)", conns, f"{batch_rps:,.1f}",
                  f"{batch_pts:,.0f}", med("batch", conns, "p50_ms"),
                  med("batch", conns, "p99_ms"),
                  f"{med('batch', conns, 'server_cpu_us') / (3 * args.batch_size):.0f}",
                  f"{factor:.1f}", f"≥ {BATCH_TARGET:g}×: {verdict(factor >= BATCH_TARGET)}"]],
                "Batch endpoint vs single endpoint (points/s)")
    if results.get("ref"):
        report_ref(results, connections, med)
    bad = sum(r["non200"] + r["socket_errors"] for r in runs)
    short = sum(max(0, r["items_sent"] - r["items_accepted"]) for r in runs)
    in_flight = sum(max(0, r["items_accepted"] - r["items_sent"]) for r in runs)
    print(f"\nnon-200 answers or socket errors: {bad}; heartbeats answered 200 but not counted "
          f"accepted by /metrics: {short}; accepted but not counted by the client (in flight "
          f"when it stopped): {in_flight}", flush=True)


def report_ref(results, connections, med) -> None:
    """The same load through the Pulse of another revision (--ref), interleaved."""
    rows = []
    for conns in connections:
        bare_rps, hb_rps, ref_rps = (med(kind, conns, "rps") for kind in ("bare", "single", "ref"))
        rows.append([conns, f"{ref_rps:,.0f}", f"{ref_rps / bare_rps if bare_rps else 0:.2f}",
                     med("ref", conns, "p99_ms"), f"{med('ref', conns, 'server_cpu_us'):.0f}",
                     f"{med('ref', conns, 'redis_cpu_us'):.0f}",
                     f"{hb_rps / ref_rps if ref_rps else 0:.2f}"])
    print_table(["conns", "ref heartbeats/s", "ref × bare", "ref p99 ms", "ref CPU µs/req",
                 "ref Redis CPU µs/req", "heartbeats/s ÷ ref"], rows,
                f"The same load through {results['ref']} (PULSE_NODE_RATE_LIMIT="
                f"{results['ref_rate_limit']}), same run")
