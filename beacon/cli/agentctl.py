"""``beacon start``, ``stop`` and ``status``: the agent's life, through its state dir."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click

from beacon import state
from beacon.cli.common import CONFIG_OPTION, load_config, setup_logging, state_dir_or_note
from beacon.table import RESULT_HEADERS, render, result_row


def stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@click.command()
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
    # The agent's log is its output: one stream (stdout), one format.
    setup_logging(log_level, err=False)
    from beacon.agent import Agent

    stop = threading.Event()
    reload_requested = threading.Event()
    stop_on_signals(stop)
    signal.signal(signal.SIGHUP, lambda _signum, _frame: reload_requested.set())
    try:
        lock_fd = state.acquire_pid_file(cfg.state_dir)
    except state.AlreadyRunning as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    try:
        Agent(cfg, stop, reload_requested=reload_requested).run()
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


@click.command()
@CONFIG_OPTION
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait for the stop.")
def stop(config_path: str, timeout: float) -> None:
    """Stop the running agent (SIGTERM, then wait for a graceful exit).

    Works from the PID file even when the config file is broken (see ``status``).
    """
    state_dir = state_dir_or_note(config_path)
    pid = state.read_pid(state_dir)
    if pid is None:
        click.echo(f"beacon is not running (no live PID in {state_dir / state.PID_FILE})")
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


@click.command()
@CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def status(config_path: str, as_json: bool) -> None:
    """Show whether the agent runs, its last report, spool and probes (exit 3 if stopped).

    A broken config file does not stop it: the state dir is then taken from what the file
    still says, or the default one, and a warning on stderr says which.
    """
    state_dir = state_dir_or_note(config_path)
    pid = state.read_pid(state_dir)
    saved = state.read_status(state_dir)
    info: dict[str, Any] = {
        "running": pid is not None,
        "pid": pid,
        "last_report_at": saved.get("last_report_at"),
        "last_report_ok": saved.get("last_report_ok"),
        "last_report_error": saved.get("last_report_error"),
        "spool": saved.get("spool")
        if pid is not None and saved.get("spool")
        else _spool_stats(state_dir),
        "probes": saved.get("probes", []),
    }
    for extra in ("node_id", "config_version", "last_upload_latency_ms", "updated_at"):
        info[extra] = saved.get(extra)
    info["state_dir"] = str(state_dir)
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        _print_status(info)
    sys.exit(0 if pid else 3)


def _print_status(info: dict[str, Any]) -> None:
    pid = info["pid"]
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
