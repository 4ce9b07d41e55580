"""``beacon`` command line (click). ``main`` is the console entry point."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NoReturn

import click
import yaml

from beacon import __version__, state
from beacon import config as config_mod
from beacon.probes import ProbeSpec, format_hostport, run_probe
from beacon.table import RESULT_HEADERS, render, result_row

CONFIG_OPTION = click.option(
    "-c",
    "--config",
    "config_path",
    default="beacon.yaml",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="beacon.yaml to use",
)


def _fail_config(exc: config_mod.BeaconConfigError) -> NoReturn:
    for line in exc.problems:
        click.echo(line, err=True)
    sys.exit(2)


def load_config(path: str, require_pulse: bool) -> config_mod.AgentConfig:
    try:
        return config_mod.load(path, require_pulse=require_pulse)
    except config_mod.BeaconConfigError as exc:
        _fail_config(exc)


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _echo(line: str) -> None:
    click.echo(line)  # click flushes, so a piped stdout shows each report at once


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="beacon")
def cli() -> None:
    """Beacon: TCP/UDP network-quality probes reporting to Pulse."""


@cli.command()
@CONFIG_OPTION
@click.option("--daemon", is_flag=True, help="Detach and log to <state_dir>/beacon.log.")
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
def start(config_path: str, daemon: bool, log_level: str) -> None:
    """Run the agent (foreground unless --daemon)."""
    cfg = load_config(config_path, require_pulse=True)
    _prepare_state_dir(config_path, cfg.state_dir)
    pid = state.read_pid(cfg.state_dir)
    if pid is not None:
        click.echo(f"beacon is already running (pid {pid})", err=True)
        sys.exit(1)
    if daemon and _daemonize(cfg.state_dir):
        return
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from beacon.agent import Agent

    stop = threading.Event()
    reload_requested = threading.Event()
    _stop_on_signals(stop)
    signal.signal(signal.SIGHUP, lambda _signum, _frame: reload_requested.set())
    try:
        lock_fd = state.acquire_pid_file(cfg.state_dir)
    except state.AlreadyRunning as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    try:
        agent = Agent(cfg, stop, out=_echo, reload_requested=reload_requested)
        agent.run()
    finally:
        state.release_pid_file(cfg.state_dir, lock_fd)


def _prepare_state_dir(config_path: str, state_dir: Path) -> None:
    """Create the state dir and its spool, or exit 2 with one line naming the field."""
    problem = None
    try:
        state.ensure_dir(state_dir)
        state.ensure_dir(state_dir / state.SPOOL_DIR)
        if not os.access(state_dir, os.W_OK | os.X_OK):
            problem = "is not writable"
    except OSError as exc:
        problem = f"cannot create ({exc.strerror or exc})"
    if problem:
        click.echo(f"{config_path}: state_dir: {problem}, got {str(state_dir)!r}", err=True)
        sys.exit(2)


def _daemonize(state_dir: Path) -> bool:
    """Double fork. Returns True in the original process (after the daemon is up)."""
    pid = os.fork()
    if pid > 0:
        os.waitpid(pid, 0)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            running = state.read_pid(state_dir)
            if running:
                click.echo(f"beacon started (pid {running}), log: {state_dir / state.LOG_FILE}")
                return True
            time.sleep(0.1)
        click.echo(f"beacon did not start; see {state_dir / state.LOG_FILE}", err=True)
        sys.exit(1)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    log_fd = os.open(state_dir / state.LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null_fd, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    return False


@cli.command()
@CONFIG_OPTION
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait for the stop.")
def stop(config_path: str, timeout: float) -> None:
    """Stop the running agent (SIGTERM, then wait for a graceful exit)."""
    cfg = load_config(config_path, require_pulse=False)
    pid = state.read_pid(cfg.state_dir)
    if pid is None:
        click.echo("beacon is not running")
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        click.echo(f"beacon stopped (pid {pid})")
        return
    except PermissionError:
        click.echo(
            f"cannot stop beacon (pid {pid}): permission denied; "
            "run `beacon stop` as the user that started it",
            err=True,
        )
        sys.exit(1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not state.pid_alive(pid):
            click.echo(f"beacon stopped (pid {pid})")
            return
        time.sleep(0.1)
    click.echo(f"beacon (pid {pid}) did not stop within {timeout:g} s", err=True)
    sys.exit(1)


def _spool_stats(state_dir: Path) -> dict[str, int]:
    from beacon.spool import read_stats

    return read_stats(state_dir / state.SPOOL_DIR)  # read-only: never repairs or creates


@cli.command()
@CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def status(config_path: str, as_json: bool) -> None:
    """Show whether the agent runs, its last report, spool and probes (exit 3 if stopped)."""
    cfg = load_config(config_path, require_pulse=False)
    pid = state.read_pid(cfg.state_dir)
    saved = state.read_status(cfg.state_dir)
    info: dict[str, Any] = {
        "running": pid is not None,
        "pid": pid,
        "last_report_at": saved.get("last_report_at"),
        "last_report_ok": saved.get("last_report_ok"),
        "last_report_error": saved.get("last_report_error"),
        "spool": saved.get("spool")
        if pid is not None and saved.get("spool")
        else _spool_stats(cfg.state_dir),
        "probes": saved.get("probes", []),
    }
    for extra in ("node_id", "config_version", "last_upload_latency_ms", "updated_at"):
        info[extra] = saved.get(extra)
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        click.echo(f"running: {f'yes (pid {pid})' if pid else 'no'}")
        ok = {True: "ok", False: "failed", None: "-"}[info["last_report_ok"]]
        click.echo(
            f"last report: {info['last_report_at'] or '-'} {ok}"
            + (f" ({info['last_report_error']})" if info["last_report_error"] else "")
        )
        sp = info["spool"]
        click.echo(
            f"spool: {sp.get('heartbeats', 0)} heartbeat(s), {sp.get('bytes', 0)} bytes, "
            f"{sp.get('dropped', 0)} dropped"
        )
        rows = [result_row(p["probe"], p.get("last_result") or {}) for p in info["probes"]]
        if rows:
            click.echo(render(RESULT_HEADERS, rows))
    sys.exit(0 if pid else 3)


def _run_all(specs: list[ProbeSpec], spacing: float) -> list[dict[str, Any]]:
    def one(spec: ProbeSpec) -> dict[str, Any]:
        run = run_probe(spec, spacing)
        return {
            "type": spec.type,
            "target": spec.target,
            "port": spec.port,
            "address": run.address,
            "resolve_ms": run.resolve_ms,
            **run.result(),
        }

    if not specs:
        return []
    with ThreadPoolExecutor(max_workers=min(64, len(specs))) as pool:
        return list(pool.map(one, specs))


@cli.command()
@CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True, help="A JSON list of results.")
def debug(config_path: str, as_json: bool) -> None:
    """Run every configured probe once and print the results."""
    cfg = load_config(config_path, require_pulse=False)
    results = _run_all([p for p in cfg.probes if p.enabled], 1.0)
    if as_json:
        click.echo(json.dumps(results, indent=2))
        return
    if not results:
        click.echo("no probes configured")
        return
    rows = [
        result_row(f"{r['type']} {format_hostport(r['target'], r['port'])}", r) for r in results
    ]
    click.echo(render(RESULT_HEADERS, rows))


@cli.command()
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
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def probe(
    kind: str, host: str, port: int, count: int, timeout: float, interval: float, as_json: bool
) -> None:
    """Ad-hoc probe of HOST PORT, like tcping (exit 1 when nothing came back)."""
    spec = ProbeSpec(kind.upper(), host, port, count=count, timeout_seconds=timeout)
    run = run_probe(spec, interval)
    result = {"type": spec.type, "target": host, "port": port, **run.result()}
    if as_json:
        click.echo(json.dumps(result))
    else:
        rtts = ", ".join("lost" if s is None else f"{s:.2f}" for s in run.samples)
        click.echo(f"{spec.label} ({run.address or 'unresolved'}): {rtts} ms")
        click.echo(render(RESULT_HEADERS, [result_row(spec.label, result)]))
    sys.exit(0 if run.stats.received else 1)


@cli.command()
@CONFIG_OPTION
@click.option("--server", required=True, help="Pulse URL, e.g. https://pulse.example.com")
@click.option("--enroll-token", required=True, help="One-time enrollment token from Pulse.")
@click.option("--name", required=True, help="This node's name.")
@click.option("--region", default=None, help="Region label sent with the registration.")
@click.option("--ca-file", default=None, type=click.Path(exists=True, dir_okay=False))
def register(
    config_path: str,
    server: str,
    enroll_token: str,
    name: str,
    region: str | None,
    ca_file: str | None,
) -> None:
    """Register this host as a node and write node_id/token into the config file."""
    from beacon.pulse import register as do_register
    from beacon.sdk import ReporterError
    from beacon.sdk.metadata import detect_ip_address

    path = Path(config_path)
    doc: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            click.echo(f"{config_path}: invalid YAML: {str(exc).splitlines()[0]}", err=True)
            sys.exit(2)
        doc = loaded if isinstance(loaded, dict) else {}
    metadata = {
        "hostname": socket.gethostname(),
        "ip_address": detect_ip_address(),
        "agent_version": __version__,
    }
    if region:
        metadata["region"] = region
    try:
        answer = do_register(server, enroll_token, name, metadata, ca_file=ca_file)
    except ReporterError as exc:
        click.echo(f"registration failed: {exc}", err=True)
        sys.exit(1)
    doc.update(
        {
            "pulse_server": server.rstrip("/"),
            "node_id": answer["node_id"],
            "node_name": name,
            "token": answer["token"],
        }
    )
    doc.pop("token_file", None)
    if ca_file:
        doc["ca_file"] = str(Path(ca_file).resolve())
    if region:
        doc["region"] = region
    doc.setdefault("report_interval_seconds", 60)
    doc.setdefault("probes", [])
    # Atomic (temp file + rename) and 0600 from the start: it holds a secret, and a
    # failure half-way must leave the previous file whole.
    state.atomic_write(path, yaml.safe_dump(doc, sort_keys=False), mode=0o600, durable=True)
    click.echo(f"registered node {answer['node_id']} as {name!r}; wrote {config_path}")


@cli.command("echo-server")
@click.option("--udp", "udp_port", required=True, type=click.IntRange(0, 65535))
@click.option("--tcp", "tcp_port", default=None, type=click.IntRange(0, 65535))
@click.option("--host", default="0.0.0.0", show_default=True)
def echo_server(udp_port: int, tcp_port: int | None, host: str) -> None:
    """Echo UDP datagrams (and TCP bytes) back verbatim, RFC 862 style."""
    from beacon.echo import serve

    stop = threading.Event()
    _stop_on_signals(stop)
    click.echo(
        f"echoing UDP on {host}:{udp_port}"
        + (f", TCP on {host}:{tcp_port}" if tcp_port is not None else "")
    )
    serve(udp_port, tcp_port, host, stop)


def main() -> None:
    """Console entry point."""
    cli(prog_name="beacon")


if __name__ == "__main__":
    main()
