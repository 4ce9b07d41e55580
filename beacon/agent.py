"""The running agent: probes on a schedule, heartbeats to Pulse, hot reload, status.

Probe set. The Beacon declares the probes of its ``beacon.yaml`` to Pulse
(``PUT /api/v1/beacon/probes``) and runs what ``GET /api/v1/beacon/config`` lists. Until
Pulse has answered once it runs the local probes as they are; after an edit of the file
that Pulse has not acknowledged yet, local probes are added to (and locally removed ones
taken out of) Pulse's list, so an edit applies at once even while Pulse is down.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from beacon import __version__, state
from beacon.config import AgentConfig
from beacon.probes import ProbeKey, ProbeSpec, RunResult
from beacon.pulse import PulseClient, make_transport
from beacon.reload import ConfigReload
from beacon.reporter import IdMap, Reporter, ReportOutcome
from beacon.scheduler import Scheduler
from beacon.sdk import metadata as md
from beacon.sdk.errors import ReporterError, ServerError
from beacon.spool import Spool

log = logging.getLogger("beacon.agent")

RELOAD_POLL_SECONDS = 2.0
# Longest the main loop sleeps before looking at a reload request (SIGHUP) again.
WAKE_SLICE_SECONDS = 0.25


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Agent(ConfigReload):
    """``beacon start``: runs until ``stop`` is set (SIGTERM/SIGINT in the CLI)."""

    def __init__(
        self,
        cfg: AgentConfig,
        stop: threading.Event,
        out: Callable[[str], None] | None = None,
        reload_poll_seconds: float = RELOAD_POLL_SECONDS,
        reload_requested: threading.Event | None = None,
    ) -> None:
        """``out`` receives each line the agent prints (default: the ``beacon.agent``
        logger, so the CLI shows them in the one log format)."""
        assert cfg.pulse_server and cfg.node_id
        self.cfg = cfg
        self.stop = stop
        self.out = out
        self.reload_poll_seconds = reload_poll_seconds
        state.ensure_dir(cfg.state_dir)
        self.spool = Spool(
            cfg.state_dir / state.SPOOL_DIR, cfg.spool_max_bytes, cfg.spool_max_age_seconds
        )
        self.transport = make_transport(
            cfg.pulse_server, cfg.token, cfg.tls_verify, cfg.ca_file, stop
        )
        self.client = PulseClient(self.transport)
        self.local: list[ProbeSpec] = list(cfg.probes)
        self.remote: list[ProbeSpec] | None = None
        self.declared: tuple | None = None
        self.ids = IdMap()
        self.config_version: str | None = None
        self.etag: str | None = None
        self.need_declare = True
        self.need_config = True
        self.sync_error: str | None = None
        self.scheduler = Scheduler(stop)
        # Set on SIGHUP: reload the file even if it looks unchanged.
        self.reload_requested = reload_requested or threading.Event()
        meta = md.collect(auto_detect=True)
        self._detected_region = meta.region
        self.reporter = Reporter(
            self.client,
            self.spool,
            cfg.node_id,
            {
                "hostname": meta.hostname,
                "ip_address": meta.ip_address,
                "region": cfg.region or meta.region,
            },
            lambda: self.ids,
            self._on_unknown_probe,
        )
        self.report_interval = cfg.report_interval_seconds
        self.last_report_started: float | None = None  # monotonic
        self.last: dict[str, Any] = {"at": None, "ok": None, "error": None, "latency_ms": None}
        self._mtime = self._stat()

    # -- probe set ---------------------------------------------------------------------
    @staticmethod
    def _signature(probes: list[ProbeSpec]) -> tuple:
        return tuple(sorted((p.key, tuple(sorted(p.declaration().items()))) for p in probes))

    def effective_probes(self) -> list[ProbeSpec]:
        local = {p.key: p for p in self.local if p.enabled}
        if self.remote is None:
            return [p.with_id(self.ids.by_key.get(k)) for k, p in local.items()]
        stale = self.declared != self._signature(self.local)
        declared_keys = {k for k, _ in self.declared or ()}
        out: dict[ProbeKey, ProbeSpec] = {}
        for p in self.remote:
            if not p.enabled or (stale and p.key in declared_keys and p.key not in local):
                continue
            out[p.key] = p
        if stale:
            for key, p in local.items():
                out[key] = p.with_id(out[key].id if key in out else self.ids.by_key.get(key))
        return list(out.values())

    def apply_probes(self) -> None:
        self.scheduler.apply(self.effective_probes())

    def _learn_ids(self, probes: list[ProbeSpec], replace_valid: set[str] | None = None) -> None:
        for p in probes:
            if p.id:
                self.ids.by_key[p.key] = p.id
        if replace_valid is not None:
            self.ids.valid = replace_valid
            # A probe deleted in Pulse must not keep its id here: a result sent under it
            # would make Pulse refuse the whole heartbeat (ERR_PROBE_NOT_FOUND).
            self.ids.by_key = {k: v for k, v in self.ids.by_key.items() if v in replace_valid}
        self.ids.known = True

    def _on_unknown_probe(self) -> None:
        self.need_config = True

    def say(self, line: str, level: int = logging.INFO) -> None:
        """One line of the agent's output (``out`` when given, else the log)."""
        if self.out is None:
            log.log(level, line)
        else:
            self.out(line)

    # -- Pulse sync --------------------------------------------------------------------
    def sync(self, force_config: bool = False) -> bool:
        """Declare local probes and fetch the config, each when needed; never raises."""
        ok = True
        try:
            if self.need_declare:
                declared_sig = self._signature(self.local)
                try:
                    version, probes = self.client.declare(self.local, max_attempts=1)
                    self._learn_ids(probes, {p.id for p in probes if p.id} | self._remote_ids())
                    if version:
                        self.config_version = version
                except ServerError as exc:
                    if exc.retryable or exc.status in (401, 403):
                        raise
                    log.error(
                        "Pulse refused the probe declaration (%s): %s", exc.status, exc.body[:500]
                    )
                self.declared = declared_sig
                self.need_declare = False
                self.need_config = True
            if self.need_config or force_config:
                reply = self.client.fetch_config(
                    None if force_config else self.etag, max_attempts=1
                )
                if reply.status != 304:
                    data = reply.data
                    self.remote = reply.extra["probes"]
                    if data.get("node_id") and str(data["node_id"]) != self.cfg.node_id:
                        log.warning(
                            "Pulse config is for node %s, not %s", data["node_id"], self.cfg.node_id
                        )
                    if data.get("config_version") is not None:
                        self.config_version = str(data["config_version"])
                    self.etag = reply.headers.get("ETag") or reply.headers.get("etag")
                    assert self.remote is not None
                    # A full config answer is the whole truth about this node's probes.
                    self._learn_ids(self.remote, self._remote_ids())
                self.need_config = False
        except ReporterError as exc:
            # Said once per distinct failure: while Pulse is down every report retries the
            # sync, and each report's own line already says it failed.
            level = logging.DEBUG if str(exc) == self.sync_error else logging.WARNING
            log.log(level, "Pulse sync failed: %s", exc)
            self.sync_error = str(exc)
            ok = False
        else:
            self.sync_error = None
        self.apply_probes()
        return ok

    def _remote_ids(self) -> set[str]:
        return {p.id for p in self.remote or [] if p.id}

    # -- reporting ---------------------------------------------------------------------
    def report_once(self) -> ReportOutcome | None:
        """One report; never raises. None when it failed unexpectedly (logged).

        On an unexpected exception the runs drained for this report that were neither
        delivered nor spooled go back to the scheduler's queue for the next report.
        """
        runs: list[RunResult] = []
        self.reporter.handed_off = 0
        try:
            return self._report(runs)
        except Exception as exc:
            log.exception("report failed unexpectedly")
            unsent = runs[self.reporter.handed_off :]
            if unsent:
                self.scheduler.requeue(unsent)
            self.last = {
                "at": _now_iso(),
                "ok": False,
                "error": f"internal error: {exc!r}",
                "latency_ms": None,
            }
            self.say(
                f"Reporting to Pulse… failed: internal error {exc!r}; "
                f"{len(unsent)} result(s) kept for the next report",
                logging.ERROR,
            )
            self.write_status(running=True)
            return None

    def _report(self, runs: list[RunResult]) -> ReportOutcome:
        if self.need_declare or self.need_config:
            self.sync()
        runs.extend(self.scheduler.drain())
        hb = self.reporter.build(runs, self.scheduler.latest(), self.config_version)
        outcome = self.reporter.report(hb)
        if not outcome.ok and self.sync_error and not self.ids.known:
            outcome.error = f"Pulse not reached: {self.sync_error}"
        if outcome.drift:
            self.sync(force_config=True)
        latency_ms = None if outcome.latency_seconds is None else outcome.latency_seconds * 1000
        self.last = {
            "at": _now_iso(),
            "ok": outcome.ok,
            "error": outcome.error,
            "latency_ms": latency_ms,
        }
        self.say(
            f"Reporting to Pulse… {self._describe(outcome, len(runs), latency_ms)}",
            logging.INFO if outcome.ok else logging.WARNING,
        )
        self.write_status(running=True)
        return outcome

    def _describe(self, o: ReportOutcome, runs: int, latency_ms: float | None) -> str:
        took = "" if latency_ms is None else f" in {latency_ms:.1f} ms"
        if o.ok:
            backlog = o.delivered - o.live
            extra = f", {backlog} spooled heartbeat(s) delivered" if backlog else ""
            drift = ", config drift: refetched" if o.drift else ""
            return f"ok: {runs} result(s), {o.accepted} point(s) accepted{took}{extra}{drift}"
        what = f"spooled ({self.spool.heartbeats} waiting)" if o.spooled else "dropped"
        return f"failed: {o.error}; {what}{took}"

    def status(self, running: bool) -> dict[str, Any]:
        latest = {r.spec.key: r for r in self.scheduler.latest()}
        probes = []
        for spec in self.scheduler.specs:
            run = latest.get(spec.key)
            last = None if run is None else {**run.result(), "address": run.address}
            probes.append({"probe": spec.label, "probe_id": spec.id, "last_result": last})
        return {
            "running": running,
            "pid": os.getpid(),
            "node_id": self.cfg.node_id,
            "pulse_server": self.cfg.pulse_server,
            "config_version": self.config_version,
            "agent_version": __version__,
            "last_report_at": self.last["at"],
            "last_report_ok": self.last["ok"],
            "last_report_error": self.last["error"],
            "last_upload_latency_ms": self.last["latency_ms"],
            "spool": self.spool.stats(),
            "probes": probes,
            "updated_at": _now_iso(),
        }

    def write_status(self, running: bool) -> None:
        try:
            state.write_status(self.cfg.state_dir, self.status(running))
        except Exception as exc:  # the status file is informational: never fatal
            log.warning("cannot write status file: %s", exc)

    # -- main loop ---------------------------------------------------------------------
    def run(self) -> int:
        self.say(
            f"Beacon {__version__}: node {self.cfg.node_id}, Pulse {self.cfg.pulse_server}, "
            f"{len(self.local)} local probe(s), state {self.cfg.state_dir}, "
            f"reporting every {self.report_interval} s"
        )
        self.apply_probes()  # local probes start now, whatever Pulse says later
        self.scheduler.start()
        self.sync()
        next_report = time.monotonic()
        next_reload = time.monotonic() + self.reload_poll_seconds
        try:
            while not self.stop.is_set():
                now = time.monotonic()
                forced = self.reload_requested.is_set()
                if now >= next_reload or forced:
                    self.reload_requested.clear()
                    interval = self.report_interval
                    self._reload_safely(forced)
                    next_reload = time.monotonic() + self.reload_poll_seconds
                    if self.report_interval != interval:
                        # The new interval counts from the last report, at once: a lowered
                        # one must not wait out what is left of the old one.
                        next_report = self._next_report_after_reload(next_report)
                if time.monotonic() >= next_report:
                    self.last_report_started = time.monotonic()
                    self.report_once()
                    while next_report <= time.monotonic():
                        next_report += self.report_interval
                # Sliced, so a reload request (SIGHUP) is seen within WAKE_SLICE_SECONDS.
                wait = min(next_report, next_reload) - time.monotonic()
                self.stop.wait(max(0.0, min(wait, WAKE_SLICE_SECONDS)))
        finally:
            self.shutdown()
        return 0

    def _next_report_after_reload(self, planned: float) -> float:
        if self.last_report_started is None:
            return planned
        return self.last_report_started + self.report_interval

    def shutdown(self) -> None:
        """Stop probing; keep completed but unreported runs in the spool for next time."""
        self.stop.set()
        self.scheduler.shutdown()
        runs = self.scheduler.drain()
        if runs:
            hb = self.reporter.build(runs, self.scheduler.latest(), self.config_version)
            self.reporter.spool_heartbeat(hb)
            self.say(f"stopping: {len(runs)} unreported result(s) spooled")
        self.write_status(running=False)
        self.transport.close()
        self.say("Beacon stopped")
