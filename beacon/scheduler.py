"""Run each probe every ``interval_seconds`` on a thread pool.

One scheduler thread keeps a heap of due times and hands due runs to the pool; runs of
different probes go in parallel, a probe never overlaps itself. First runs are spread
over the first seconds (``spread_seconds`` / number of probes apart, at most 0.1 s), so a
hundred probes do not fire together yet all have started within 10 s.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from beacon.probes import ProbeKey, ProbeSpec, RunResult, run_probe

log = logging.getLogger("beacon.scheduler")

SAMPLE_SPACING_SECONDS = 1.0
MAX_WORKERS = 256

ProbeRunner = Callable[[ProbeSpec, float, threading.Event], RunResult]


def sample_spacing(spec: ProbeSpec) -> float:
    """1 s between samples, less when ``count`` samples would not fit the interval.

    The run (samples plus the last one's timeout) is kept within 80 % of the interval so
    it is over before the next run is due.
    """
    budget = spec.interval_seconds * 0.8 - spec.timeout_seconds
    if spec.count <= 1:
        return SAMPLE_SPACING_SECONDS
    return max(0.01, min(SAMPLE_SPACING_SECONDS, budget / (spec.count - 1)))


class Scheduler:
    """Keeps the running probe set equal to what ``apply`` was last given."""

    def __init__(
        self,
        stop: threading.Event,
        runner: ProbeRunner | None = None,
        spread_seconds: float = 9.0,
        on_result: Callable[[RunResult], None] | None = None,
    ) -> None:
        self.stop = stop
        self.runner: ProbeRunner = runner or run_probe
        self.spread_seconds = spread_seconds
        self.on_result = on_result
        self._specs: dict[ProbeKey, ProbeSpec] = {}
        self._generation: dict[ProbeKey, int] = {}
        self._heap: list[tuple[float, int, ProbeKey, int]] = []
        self._running: set[ProbeKey] = set()
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._completed: deque[RunResult] = deque()
        self._latest: dict[ProbeKey, RunResult] = {}
        self._last_due: dict[ProbeKey, float] = {}
        # Room for every probe to have a run in flight at once: runs mostly wait on the
        # network, and the pool only creates a thread when no idle one is left, so the
        # thread count follows the real concurrency, not this cap.
        self._pool = ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="probe")
        self._thread = threading.Thread(target=self._loop, name="beacon-scheduler", daemon=True)

    # -- control -----------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop scheduling; runs in flight see ``stop`` and end at their next sample."""
        self.stop.set()
        self._wake.set()
        self._thread.join(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def apply(self, specs: list[ProbeSpec]) -> None:
        """Make ``specs`` the probe set: new ones start soon, removed ones stop, changed
        ones take their new settings from their next run."""
        now = time.monotonic()
        with self._lock:
            wanted = {s.key: s for s in specs if s.enabled}
            added = [k for k in wanted if k not in self._specs]
            for key in list(self._specs):
                if key not in wanted:
                    del self._specs[key]
                    self._latest.pop(key, None)
                    self._generation[key] = self._generation.get(key, 0) + 1
            step = min(0.1, self.spread_seconds / max(1, len(added)))
            for key, spec in wanted.items():
                old = self._specs.get(key)
                self._specs[key] = spec
                if (
                    old is not None
                    and old.interval_seconds != spec.interval_seconds
                    and key not in self._running  # a running one reschedules on completion
                    and key in self._last_due
                ):
                    self._push(key, max(now, self._last_due[key] + spec.interval_seconds))
            for index, key in enumerate(added):
                self._push(key, now + index * step)
        self._wake.set()

    def _push(self, key: ProbeKey, due: float) -> None:
        gen = self._generation.get(key, 0) + 1
        self._generation[key] = gen
        heapq.heappush(self._heap, (due, next(self._seq), key, gen))

    # -- results -----------------------------------------------------------------------
    def drain(self) -> list[RunResult]:
        """Runs completed since the last drain, oldest first (each returned once)."""
        out = []
        while True:
            try:
                out.append(self._completed.popleft())
            except IndexError:
                return out

    def requeue(self, runs: list[RunResult]) -> None:
        """Put drained runs back at the front (a report that could not use them)."""
        self._completed.extendleft(reversed(runs))

    def latest(self) -> list[RunResult]:
        """The latest completed run of each current probe."""
        with self._lock:
            return list(self._latest.values())

    @property
    def specs(self) -> list[ProbeSpec]:
        with self._lock:
            return list(self._specs.values())

    # -- loop --------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self.stop.is_set():
            now = time.monotonic()
            due: list[tuple[ProbeSpec, float]] = []
            with self._lock:
                while self._heap and self._heap[0][0] <= now:
                    when, _, key, gen = heapq.heappop(self._heap)
                    spec = self._specs.get(key)
                    if spec is None or gen != self._generation.get(key) or key in self._running:
                        continue
                    self._running.add(key)
                    self._last_due[key] = when
                    due.append((spec, when))
                wait = self._heap[0][0] - now if self._heap else 1.0
            for spec, when in due:
                self._pool.submit(self._run, spec, when)
            self._wake.wait(max(0.0, min(wait, 1.0)))
            self._wake.clear()

    def _run(self, spec: ProbeSpec, due: float) -> None:
        try:
            result = self.runner(spec, sample_spacing(spec), self.stop)
        except Exception:
            log.exception("probe %s failed unexpectedly", spec.label)
            result = None
        with self._lock:
            self._running.discard(spec.key)
            current = self._specs.get(spec.key)
            if current is not None:
                # Fixed rate: next run one interval after this one was due (or now, if the
                # run overran), with the probe's current settings.
                nxt = max(due + current.interval_seconds, time.monotonic())
                self._push(spec.key, nxt)
            if result is None or self.stop.is_set():
                return  # a run cut short by shutdown is not a measurement
            if current is not None:
                self._latest[spec.key] = result
            self._completed.append(result)
        self._wake.set()
        if self.on_result:
            self.on_result(result)
