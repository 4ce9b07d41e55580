"""``beacon probe`` (ad hoc, like tcping) and ``beacon debug`` (the agent's probe set once)."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import click

from beacon import config as config_mod
from beacon.cli.common import CONFIG_OPTION, load_config
from beacon.probes import (
    ERR_CONNECTION_REFUSED,
    ERR_CONNECTION_TIMEOUT,
    ERR_DNS,
    ERR_NETWORK_UNREACHABLE,
    ERR_SOCKET,
    ProbeSpec,
    RunResult,
    format_hostport,
    run_probe,
)
from beacon.table import RESULT_HEADERS, render, result_row

# How a lost sample reads: what went wrong, not a latency.
ERROR_WORDS = {
    ERR_CONNECTION_REFUSED: "refused",
    ERR_CONNECTION_TIMEOUT: "timeout",
    ERR_NETWORK_UNREACHABLE: "unreachable",
    ERR_DNS: "name not resolved",
    ERR_SOCKET: "socket error",
}


def error_word(code: str | None) -> str:
    return ERROR_WORDS.get(code or "", (code or "lost").lower())


@contextlib.contextmanager
def interrupt_sets(stop: threading.Event) -> Iterator[None]:
    """While inside, Ctrl-C (SIGINT) sets ``stop`` instead of raising KeyboardInterrupt."""
    try:
        previous = signal.signal(signal.SIGINT, lambda _signum, _frame: stop.set())
    except ValueError:  # not the main thread: leave SIGINT alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _loss(value: float) -> str:
    return f"{round(value, 2):g}%"


def summary_lines(run: RunResult) -> list[str]:
    """The ping-style summary of a run: counts, loss and why, then the RTT figures."""
    s = run.stats
    where = f" ({run.address})" if run.address and run.address != run.spec.target else ""
    lost = Counter(error_word(e) for e in run.errors)
    why = ", ".join(f"{n} {word}" for word, n in lost.most_common())
    lines = [
        f"--- {run.spec.label}{where} ---",
        f"{s.sent} sent, {s.received} received, {_loss(s.packet_loss_rate)} loss"
        + (f" ({why})" if why else ""),
    ]
    if s.received:
        figures = (s.latency_min_ms, s.latency_ms, s.latency_median_ms, s.latency_max_ms)
        rtts = "/".join(f"{v:.2f}" for v in (*figures, s.latency_p95_ms))
        lines.append(f"rtt min/avg/median/max/p95 = {rtts} ms, jitter {s.jitter_ms:.2f} ms")
    return lines


@click.command()
@click.argument("kind", type=click.Choice(["tcp", "udp"], case_sensitive=False))
@click.argument("host")
@click.argument("port", type=click.IntRange(1, 65535))
@click.option("-c", "--count", default=4, show_default=True, type=click.IntRange(1, 1000))
@click.option("-t", "--timeout", default=2.0, show_default=True, type=click.FloatRange(0.001, 60))
@click.option(
    "-i",
    "--interval",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0, 60),
    help="Seconds between samples.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object at the end.")
def probe(
    kind: str, host: str, port: int, count: int, timeout: float, interval: float, as_json: bool
) -> None:
    """Ad-hoc probe of HOST PORT, like tcping: one line per sample as it comes, then a
    summary (also on Ctrl-C, of what was measured). Exit 1 when nothing came back."""
    spec = ProbeSpec(kind.upper(), host, port, count=count, timeout_seconds=timeout)
    completed: dict[int, tuple[float | None, str | None]] = {}

    def on_sample(run: RunResult, seq: int, rtt: float | None, error: str | None) -> None:
        completed[seq] = (rtt, error)
        if not as_json:
            to = format_hostport(run.address or host, port)
            shown = f"time={rtt:.2f} ms" if rtt is not None else error_word(error)
            click.echo(f"seq={seq + 1} {to} {shown}")

    if not as_json:
        click.echo(f"{spec.label}: {count} sample(s), timeout {timeout:g} s, every {interval:g} s")
    stop = threading.Event()
    with interrupt_sets(stop):
        run = run_probe(spec, interval, stop, on_sample)
    if stop.is_set():
        # Ctrl-C: what completed, in order; the sample in flight was neither answered nor lost.
        done = [completed[seq] for seq in sorted(completed)]
        run.samples = [rtt for rtt, _ in done]
        run.errors = [err for _, err in done if err]
    result = {"type": spec.type, "target": host, "port": port, **run.result()}
    if as_json:
        click.echo(json.dumps(result))
    else:
        if run.errors and run.errors[0] == ERR_DNS and not completed:
            click.echo(f"cannot resolve {host}")
        for line in summary_lines(run):
            click.echo(line)
    sys.exit(0 if run.stats.received else 1)


# -- debug ---------------------------------------------------------------------------------
def _settings(spec: ProbeSpec) -> dict[str, Any]:
    return {
        "interval": spec.interval_seconds,
        "count": spec.count,
        "timeout": spec.timeout_seconds,
    }


def effective_probe_set(
    local: list[ProbeSpec], remote: list[ProbeSpec] | None
) -> tuple[list[tuple[str, ProbeSpec]], list[str]]:
    """What ``beacon start`` would run, as (source, probe), and notes for the operator.

    The agent declares its local probes to Pulse and runs the enabled probes Pulse lists;
    a local probe not in Pulse's list yet is added by that declaration. When Pulse lists a
    probe of the same type+target+port, Pulse's settings are the ones that run.
    """
    enabled = [p for p in local if p.enabled]
    if remote is None:
        return [("local", p) for p in enabled], []
    by_key = {p.key: p for p in remote}
    local_keys = {p.key: p for p in enabled}
    out: list[tuple[str, ProbeSpec]] = []
    notes: list[str] = []
    for rp in remote:
        lp = local_keys.get(rp.key)
        if not rp.enabled:
            if lp is not None:
                notes.append(f"{lp.label}: local probe disabled in Pulse, not run")
            continue
        if lp is None:
            out.append(("pulse", rp))
        elif _settings(lp) == _settings(rp):
            out.append(("local+pulse", rp))
        else:
            changes = ", ".join(
                f"{name} {_settings(lp)[name]:g}→{_settings(rp)[name]:g}"
                for name in _settings(lp)
                if _settings(lp)[name] != _settings(rp)[name]
            )
            notes.append(
                f"{lp.label}: local probe overridden by Pulse's (same type+target+port): {changes}"
            )
            out.append(("pulse (overrides local)", rp))
    for key, lp in local_keys.items():
        if key not in by_key:
            out.append(("local", lp))
            notes.append(f"{lp.label}: not in Pulse's list yet; `beacon start` declares it")
    return out, notes


def _fetch_remote(cfg: config_mod.AgentConfig) -> tuple[list[ProbeSpec] | None, str | None]:
    """Pulse's probe list for this node, or (None, why not)."""
    if not (cfg.pulse_server and cfg.node_id and cfg.token):
        return None, "no pulse_server/node_id/token in the config"
    from beacon.pulse import PulseClient, make_transport
    from beacon.sdk.errors import ReporterError

    transport = make_transport(cfg.pulse_server, cfg.token, cfg.tls_verify, cfg.ca_file)
    try:
        reply = PulseClient(transport).fetch_config(max_attempts=1)
        return list(reply.extra["probes"]), None
    except ReporterError as exc:
        return None, str(exc)
    finally:
        transport.close()


def _run_all(chosen: list[tuple[str, ProbeSpec]], spacing: float) -> list[dict[str, Any]]:
    def one(item: tuple[str, ProbeSpec]) -> dict[str, Any]:
        source, spec = item
        run = run_probe(spec, spacing)
        return {
            "type": spec.type,
            "target": spec.target,
            "port": spec.port,
            "source": source,
            "probe_id": spec.id,
            "address": run.address,
            "resolve_ms": run.resolve_ms,
            **run.result(),
        }

    if not chosen:
        return []
    with ThreadPoolExecutor(max_workers=min(64, len(chosen))) as pool:
        return list(pool.map(one, chosen))


@click.command()
@CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True, help="A JSON list of results.")
def debug(config_path: str, as_json: bool) -> None:
    """Run the probe set the agent runs once (local probes and, when Pulse answers, the
    probes it lists for this node) and print the results."""
    cfg = load_config(config_path, require_pulse=False)
    remote, why_not = _fetch_remote(cfg)
    chosen, notes = effective_probe_set(list(cfg.probes), remote)
    if remote is None:
        notes.insert(0, f"Pulse's probe list not used ({why_not}): local probes only")
    else:
        notes.insert(0, f"{len(remote)} probe(s) listed by Pulse, {len(cfg.probes)} local")
    for note in notes:
        click.echo(note, err=as_json)
    results = _run_all(chosen, 1.0)
    if as_json:
        click.echo(json.dumps(results, indent=2))
        return
    if not results:
        click.echo("no probes to run")
        return
    rows = [
        [r["source"], *result_row(f"{r['type']} {format_hostport(r['target'], r['port'])}", r)]
        for r in results
    ]
    click.echo(render(("SOURCE", *RESULT_HEADERS), rows))
