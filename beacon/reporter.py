"""Build the Beacon heartbeat and deliver it: live, or spooled and batched later.

A heartbeat is built once per report from the runs completed since the previous one, so
every run is in exactly one heartbeat. That heartbeat is then either delivered, spooled
(delivered later, oldest first, through the batch endpoint) or — when Pulse rejects it as
invalid — dropped and counted. Results carry their probe key (type, target, port) until
they are sent, so runs measured before Pulse gave the probe an id can still be mapped.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from beacon import __version__
from beacon.probes import ProbeKey, RunResult
from beacon.pulse import PulseClient
from beacon.sdk import limits
from beacon.sdk.errors import ReporterError, ServerError
from beacon.spool import Spool

log = logging.getLogger("beacon.reporter")

BATCH_LIMIT = 500
MAX_RESULTS = 1000  # Pulse takes at most 1000 results per heartbeat (SPEC §5)
SLOW_UPLOAD_SECONDS = 5.0
# The heartbeat itself is bad: resending cannot help. A 413 from the single endpoint is
# not final: the heartbeat is spooled, and the batch endpoint halves its batches on 413
# until a single heartbeat is still too large (then it is final there).
FINAL_STATUSES = {400, 422}
BATCH_FINAL_STATUSES = {400, 413, 422}
OPTIONAL_FIELDS = (
    "latency_median_ms",
    "latency_min_ms",
    "latency_max_ms",
    "latency_p95_ms",
    "latency_variance",
)


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def summarize(latest: Iterable[RunResult]) -> dict[str, float]:
    """The node summary over the latest run of each probe (SPEC §7).

    Loss: the mean over **every** probe's latest run, a run that received nothing
    counting 100, so a dead target is never hidden by the healthy ones. Latency and
    jitter: the mean over the latest runs that received a sample. All failed: latency 0,
    jitter 0, loss 100; no run yet: the same (latency 0 is what Pulse's wire format
    wants for "nothing measured"; Pulse stores it as null).
    """
    stats = [run.stats for run in latest]
    ok = [s for s in stats if s.received > 0]
    if not ok:
        return {"latency_ms": 0.0, "packet_loss_rate": 100.0, "jitter_ms": 0.0}
    losses = [s.packet_loss_rate if s.received > 0 else 100.0 for s in stats]
    return {
        "latency_ms": round(math.fsum(s.latency_ms or 0.0 for s in ok) / len(ok), 2),
        "packet_loss_rate": round(math.fsum(losses) / len(losses), 2),
        "jitter_ms": round(math.fsum(s.jitter_ms for s in ok) / len(ok), 2),
    }


def split(hb: dict[str, Any], max_results: int = MAX_RESULTS) -> list[dict[str, Any]]:
    """``hb`` as heartbeats of at most ``max_results`` results each, in order.

    Every chunk carries the same summary, timestamp and metadata; Pulse stores probe
    points per result, so splitting loses nothing (the summary point is deduplicated by
    its timestamp).
    """
    results = hb.get("results") or []
    if len(results) <= max_results:
        return [hb]
    return [
        {**hb, "results": results[i : i + max_results]} for i in range(0, len(results), max_results)
    ]


@dataclass
class IdMap:
    """What Pulse told us about probe ids; ``known`` once any declaration/config arrived."""

    by_key: dict[ProbeKey, str] = field(default_factory=dict)
    valid: set[str] = field(default_factory=set)
    known: bool = False


@dataclass
class ReportOutcome:
    ok: bool
    accepted: int = 0
    delivered: int = 0  # heartbeats delivered (spooled ones included)
    live: int = 0  # of which this report's own (more than one when it was split)
    spooled: bool = False
    rejected: int = 0
    error: str | None = None
    latency_seconds: float | None = None
    drift: bool = False
    config_version: str | None = None


class Reporter:
    """Heartbeat assembly and delivery for one node."""

    def __init__(
        self,
        client: PulseClient,
        spool: Spool,
        node_id: str,
        metadata: dict[str, Any],
        ids: Callable[[], IdMap],
        on_unknown_probe: Callable[[], None] | None = None,
    ) -> None:
        self.client = client
        self.spool = spool
        self.node_id = node_id
        self.metadata = metadata
        self.ids = ids
        self.on_unknown_probe = on_unknown_probe or (lambda: None)
        self.unmapped_dropped = 0
        # Results of the heartbeat given to the current ``report`` whose fate is settled
        # (delivered, spooled or rejected), in order: after an unexpected exception the
        # agent puts the runs behind them back in its queue.
        self.handed_off = 0

    def spool_heartbeat(self, hb: dict[str, Any]) -> None:
        """Spool ``hb`` (in chunks of at most MAX_RESULTS results)."""
        for chunk in split(hb):
            self.spool.append(chunk)
            self.handed_off += len(chunk.get("results") or [])

    def build(
        self, runs: list[RunResult], latest: Iterable[RunResult], config_version: str | None
    ) -> dict[str, Any]:
        """The heartbeat (internal form: results still carry ``_key``)."""
        hb: dict[str, Any] = {
            "node_id": self.node_id,
            "timestamp": utc_now_iso(),
            **summarize(latest),
            "config_version": config_version,
            "agent_version": __version__,
            "metadata": self.metadata,
            "results": [],
        }
        for run in runs:
            item = run.result()
            item["probe_id"] = run.spec.id
            item["_key"] = list(run.spec.key)
            hb["results"].append(item)
        return hb

    def finalize(self, hb: dict[str, Any]) -> dict[str, Any] | None:
        """The wire form, or None while ids are unknown (Pulse not reached yet)."""
        ids = self.ids()
        results = []
        for item in hb.get("results", []):
            item = dict(item)
            key = tuple(item.pop("_key", ()) or ())
            pid = item.get("probe_id")
            if pid is None or (ids.known and pid not in ids.valid):
                # Measured before the id was known, or under an id Pulse has since
                # replaced (probe deleted and declared again): map by probe key.
                pid = ids.by_key.get(key, pid)  # type: ignore[call-overload]
            if pid is None and not ids.known:
                return None
            if pid is None or (ids.known and pid not in ids.valid):
                # The probe is gone from Pulse; sending it would fail the whole heartbeat.
                self.unmapped_dropped += 1
                continue
            item["probe_id"] = pid
            for name in OPTIONAL_FIELDS:
                if item.get(name) is None:
                    item.pop(name, None)
            results.append(item)
        wire = {k: v for k, v in hb.items() if k != "results"}
        # Trimmed here, on the way out, so spooled heartbeats of any age obey the limits.
        for name in ("config_version", "agent_version"):
            if wire.get(name) is None:
                wire.pop(name, None)
            else:
                wire[name] = limits.clean_text(str(wire[name]), limits.MAX_VERSION_CHARS)
        if "metadata" in wire:
            wire["metadata"] = limits.trim_metadata(wire["metadata"] or {})
        wire["results"] = results
        return wire

    def report(self, hb: dict[str, Any]) -> ReportOutcome:
        """Deliver spooled heartbeats first (order), then this one; spool it on failure.

        A heartbeat with more than MAX_RESULTS results goes out as several heartbeats.
        """
        started = time.perf_counter()
        self.handed_off = 0
        out = ReportOutcome(ok=False)
        chunks = split(hb)
        if self.spool.heartbeats and not self.flush(out):
            for chunk in chunks:
                self.spool_heartbeat(chunk)
            out.spooled = True
            out.latency_seconds = time.perf_counter() - started
            return out
        all_ok = True
        for index, chunk in enumerate(chunks):
            fate = self._send_live(chunk, out)
            if fate != "ok":
                all_ok = False
            if fate == "spooled":  # Pulse cannot take it now: the rest waits too
                for rest in chunks[index + 1 :]:
                    self.spool_heartbeat(rest)
                break
        out.ok = all_ok
        out.latency_seconds = time.perf_counter() - started
        if out.ok and out.latency_seconds > SLOW_UPLOAD_SECONDS:
            log.warning("slow upload: heartbeat took %.2f s", out.latency_seconds)
        return out

    def _send_live(self, hb: dict[str, Any], out: ReportOutcome) -> str:
        """POST one heartbeat: "ok", "spooled" or "rejected" (counted, not retried)."""
        wire = self.finalize(hb)
        if wire is None:
            self.spool_heartbeat(hb)
            out.spooled, out.error = True, "probe ids not known yet (Pulse not reached)"
            return "spooled"
        try:
            reply = self.client.heartbeat(wire)
        except ServerError as exc:
            out.error = f"HTTP {exc.status} {exc.code or ''}".strip()
            if exc.status == 400 and exc.code == "ERR_PROBE_NOT_FOUND":
                # A probe vanished between our last config and now: refresh the ids and let
                # the batch endpoint judge the results one by one later.
                self.on_unknown_probe()
            elif exc.status in FINAL_STATUSES:
                log.error("heartbeat rejected by Pulse (%s): %s", exc.status, exc.body[:500])
                self.spool.count_rejected(1)
                out.rejected += 1
                self.handed_off += len(hb.get("results") or [])
                return "rejected"
            else:
                log.error("heartbeat refused by Pulse (%s): %s", exc.status, exc.body[:500])
            self.spool_heartbeat(hb)
            out.spooled = True
            return "spooled"
        except ReporterError as exc:
            out.error = str(exc)
            self.spool_heartbeat(hb)
            out.spooled = True
            return "spooled"
        self.handed_off += len(hb.get("results") or [])
        data = reply.data if isinstance(reply.data, dict) else {}
        out.delivered += 1
        out.live += 1
        out.accepted += int(data.get("accepted") or 0)
        self._note_version(out, data)
        return "ok"

    def _note_version(self, out: ReportOutcome, data: dict[str, Any]) -> None:
        out.drift = out.drift or bool(data.get("drift_detected"))
        if data.get("config_version") is not None:
            out.config_version = str(data["config_version"])

    def flush(self, out: ReportOutcome | None = None, max_batches: int = 20) -> bool:
        """Send spooled heartbeats oldest-first in batches; True when the spool is empty.

        The first batch gets a single attempt: while Pulse is down every report would
        otherwise spend its retry waits here, and the spool keeps the data safe anyway.
        """
        out = out or ReportOutcome(ok=False)
        limit = BATCH_LIMIT
        for batch_no in range(max_batches):
            records = self.spool.peek(limit)
            if not records:
                return True
            wires = []
            for rec in records:
                wire = self.finalize(rec.heartbeat)
                if wire is None:
                    out.error = "probe ids not known yet (Pulse not reached)"
                    return False
                wires.append(wire)
            try:
                reply = self.client.heartbeats(wires, max_attempts=1 if batch_no == 0 else None)
            except ServerError as exc:
                out.error = f"HTTP {exc.status} {exc.code or ''}".strip()
                if exc.status == 413 and limit > 1:
                    limit = max(1, limit // 2)
                    continue
                if exc.status in BATCH_FINAL_STATUSES:
                    log.error("spooled batch rejected (%s): %s", exc.status, exc.body[:500])
                    self.spool.commit(records[-1].end, len(records))
                    self.spool.count_rejected(len(records))
                    out.rejected += len(records)
                    continue
                return False
            except ReporterError as exc:
                out.error = str(exc)
                return False
            data = reply.data if isinstance(reply.data, dict) else {}
            rejected = data.get("rejected") or []
            for item in rejected:
                log.warning("spooled heartbeat rejected: %s", item)
            self.spool.commit(records[-1].end, len(records))
            if rejected:
                self.spool.count_rejected(len(rejected))
            out.rejected += len(rejected)
            out.delivered += len(records) - len(rejected)
            out.accepted += int(data.get("accepted") or 0)
            self._note_version(out, data)
        return self.spool.heartbeats == 0
