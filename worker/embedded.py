"""Embedded mode (`make run`, no REDIS_URL): the periodic tasks and the server in one process.

There is no broker, so a named daemon thread runs the same task functions as Celery beat,
on the one schedule both read: `celeryconfig.beat_schedule` (its interval and crontab
entries are asked when they are next due). An early flush wakes the thread (it registers
itself as `app.extensions["pulse_scheduler"]`, which `app.history.early_flush` looks up).

`flask --app wsgi serve` (a Flask CLI command registered through the `flask.commands`
entry point, so the app never imports the worker) serves the app with this scheduler and,
on Ctrl-C or SIGTERM, stops taking requests, lets those in flight finish, then flushes
every accepted point and aggregates every minute it touched before it exits.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import click
from celery.schedules import maybe_schedule
from flask import Flask, current_app
from flask.cli import with_appcontext

log = logging.getLogger(__name__)
FIRST_RUN_DELAY_SECONDS = 2.0
IN_FLIGHT_WAIT_SECONDS = 10.0


def task_functions() -> dict[str, Callable[[], object]]:
    """Task name -> the function Celery runs for it (called in-process here)."""
    from worker import tasks

    return {task.name: task for task in (tasks.flush_metrics, tasks.aggregate_minute,
                                         tasks.prune_metrics, tasks.maintain_partitions,
                                         tasks.evaluate_alerts, tasks.sweep_notifications,
                                         tasks.forget_drift_instances)}


def scheduled_jobs() -> list[tuple[str, object, Callable[[], object]]]:
    """(task name, celery schedule, function) of every beat_schedule entry."""
    import celeryconfig

    functions = task_functions()
    return [(entry["task"], maybe_schedule(entry["schedule"]), functions[entry["task"]])
            for entry in celeryconfig.beat_schedule.values()]


class EmbeddedScheduler:
    """A named daemon thread running the beat schedule's tasks inside the app."""

    FLUSH = "worker.tasks.flush_metrics"

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.jobs = {name: (schedule, func) for name, schedule, func in scheduled_jobs()}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pulse-embedded-scheduler",
                                        daemon=True)

    def start(self) -> None:
        self.app.extensions["pulse_scheduler"] = self
        self._thread.start()
        log.warning("embedded mode: flush/aggregate/prune run in-process (single process only)")

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        self.app.extensions.pop("pulse_scheduler", None)

    def wake_flush(self) -> None:
        self._wake.set()

    def run_job(self, name: str) -> None:
        with self.app.app_context():
            try:
                self.jobs[name][1]()
            except Exception:
                log.exception("embedded job %s failed; it runs again on schedule", name)

    def _next_due(self, schedule, last_run: datetime) -> float:
        remaining = schedule.remaining_estimate(last_run)
        return time.monotonic() + max(0.0, remaining.total_seconds())

    def _run(self) -> None:
        first = time.monotonic() + FIRST_RUN_DELAY_SECONDS
        next_run = {name: first for name in self.jobs}
        while not self._stop.is_set():
            for name, (schedule, _func) in self.jobs.items():
                if self._stop.is_set():
                    return
                if time.monotonic() >= next_run[name]:
                    started = datetime.now(UTC)
                    self.run_job(name)
                    next_run[name] = self._next_due(schedule, started)
            timeout = max(0.05, min(next_run.values()) - time.monotonic())
            if self._wake.wait(timeout):
                self._wake.clear()
                if not self._stop.is_set() and self.FLUSH in self.jobs:
                    self.run_job(self.FLUSH)


def drain(app: Flask) -> None:
    """Persist everything accepted and aggregate every minute it touched (graceful stop).

    The current minute is aggregated too: in embedded mode the marks of what is still to
    aggregate live in the in-process Redis, which does not survive the exit.
    """
    from app.history.aggregation import aggregate_pending_minutes
    from app.history.flush import flush_pending

    with app.app_context():
        report = flush_pending()
        minutes = aggregate_pending_minutes(now=datetime.now(UTC) + timedelta(minutes=1))
    log.warning("stopped: %d rows flushed, %d minutes aggregated", report.inserted, minutes)


class _InFlight:
    """WSGI middleware counting requests being served, so a stop can wait for them."""

    STOPPING = json.dumps({"code": "ERR_UNAVAILABLE", "message": "Pulse is stopping, retry",
                           "details": {}}).encode()

    def __init__(self, wsgi_app) -> None:
        self.wsgi_app = wsgi_app
        self.count = 0
        self.closing = False
        self._lock = threading.Lock()

    def __call__(self, environ, start_response):
        if self.closing:
            # A kept-alive connection may still carry a request after the stop began: it
            # is answered 503 (a Beacon spools and sends it again), never accepted after
            # the final flush.
            start_response("503 SERVICE UNAVAILABLE", [
                ("Content-Type", "application/json"), ("Retry-After", "5"),
                ("Content-Length", str(len(self.STOPPING)))])
            return [self.STOPPING]
        self._add(1)
        try:
            body = self.wsgi_app(environ, start_response)
        except BaseException:
            self._add(-1)
            raise
        return _Closing(body, lambda: self._add(-1))

    def _add(self, amount: int) -> None:
        with self._lock:
            self.count += amount

    def wait_idle(self, timeout: float, settle: float = 0.2) -> bool:
        """Wait until no request has been in flight for `settle` seconds (a request taken
        off the socket just before the stop enters within microseconds)."""
        deadline = time.monotonic() + timeout
        idle_since = None
        while time.monotonic() < deadline:
            if self.count:
                idle_since = None
            elif idle_since is None:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since >= settle:
                return True
            time.sleep(0.02)
        return False


class _Closing:
    """A response body whose close() (called by the server once it is sent, streamed
    bodies included) also runs `done`."""

    def __init__(self, body, done: Callable[[], None]) -> None:
        self.body, self.done = body, done

    def __iter__(self):
        return iter(self.body)

    def close(self) -> None:
        try:
            if hasattr(self.body, "close"):
                self.body.close()
        finally:
            self.done()


def serve(app: Flask, host: str, port: int) -> None:
    """Serve `app` with the embedded scheduler until Ctrl-C or SIGTERM, then drain."""
    from werkzeug.serving import make_server

    if app.config.get("REDIS_URL"):
        raise click.ClickException("`serve` is the embedded mode: unset REDIS_URL, or run "
                                   "gunicorn, `celery -A worker worker` and `celery -A worker "
                                   "beat` (README, Processes)")
    in_flight = _InFlight(app)
    server = make_server(host, port, in_flight, threaded=True)
    scheduler = EmbeddedScheduler(app)
    stopping = threading.Event()

    def request_stop(signum, _frame) -> None:
        if not stopping.is_set():
            stopping.set()
            log.warning("signal %d: stopping (flushing what was accepted first)", signum)
            in_flight.closing = True
            # shutdown() waits for serve_forever to return: not from its own thread.
            threading.Thread(target=server.shutdown, name="pulse-stop").start()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    scheduler.start()
    demo = _start_demo(app, host, server.server_port)
    click.echo(f"Pulse (embedded mode) on http://{host}:{server.server_port} "
               "— Ctrl-C stops it after flushing")
    click.echo(f"Dashboard: open http://{_loopback(host)}:{server.server_port}/ and sign in")
    try:
        server.serve_forever()
    finally:
        if demo is not None:
            demo.stop()
        in_flight.wait_idle(IN_FLIGHT_WAIT_SECONDS)
        server.server_close()
        scheduler.stop()
        drain(app)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _loopback(host: str) -> str:
    """Where a local client reaches a server bound to `host`."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host


def _start_demo(app: Flask, host: str, port: int):
    """The demo node and Beacon (worker.demo), unless PULSE_DEMO=0; None when off."""
    if not app.config.get("PULSE_DEMO"):
        return None
    from worker.demo import NODE_NAME, Demo

    address = _loopback(host)
    demo = Demo(app, f"http://{'[' + address + ']' if ':' in address else address}:{port}")
    try:
        demo.start()
    except Exception:  # the demo must never keep Pulse from serving
        log.exception("demo: could not start; Pulse serves without it")
        demo.stop()
        return None
    click.echo(f"Demo: node {NODE_NAME} reports every 10 s (PULSE_DEMO=0 turns it off)")
    return demo


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, envvar="HOST")
@click.option("--port", default=5000, show_default=True, type=int, envvar="PORT")
@with_appcontext
def serve_command(host: str, port: int) -> None:
    """Serve Pulse in embedded mode: the periodic tasks in-process, drained on stop."""
    serve(current_app._get_current_object(), host, port)
