import threading
import time

from beacon.probes import ProbeSpec, RunResult
from beacon.scheduler import Scheduler, sample_spacing


def spec(i: int, **kw) -> ProbeSpec:
    return ProbeSpec("TCP", f"h{i}.example", 80, **kw)


def test_sample_spacing():
    assert sample_spacing(spec(0, interval_seconds=60, count=10, timeout_seconds=5)) == 1.0
    tight = sample_spacing(spec(0, interval_seconds=60, count=100, timeout_seconds=5))
    assert 0.4 < tight < 0.45  # 100 samples fit in the interval
    assert sample_spacing(spec(0, count=1)) == 1.0


def test_first_runs_spread_within_10s():
    sched = Scheduler(threading.Event())
    now = time.monotonic()
    sched.apply([spec(i) for i in range(100)])
    dues = sorted(d for d, *_ in sched._heap)
    assert dues[-1] - now < 10 and dues[0] - now < 0.05
    gaps = [b - a for a, b in zip(dues, dues[1:], strict=False)]
    assert min(gaps) > 0.05  # not all at once


class FakeRunner:
    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []
        self.lock = threading.Lock()

    def __call__(self, s: ProbeSpec, spacing: float, stop: threading.Event) -> RunResult:
        with self.lock:
            self.calls.append((s.target, time.monotonic()))
        time.sleep(0.05)
        return RunResult(spec=s, started_at=time.time(), samples=[1.0])


def wait_for(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return False


def test_runs_in_parallel_and_applies_changes():
    runner = FakeRunner()
    stop = threading.Event()
    sched = Scheduler(stop, runner=runner, spread_seconds=0.2)
    sched.start()
    try:
        sched.apply([spec(i) for i in range(20)])
        assert wait_for(lambda: len(runner.calls) >= 20)
        firsts = sorted(t for _, t in runner.calls)
        assert firsts[-1] - firsts[0] < 0.5  # spread, parallel, not one after the other
        assert wait_for(lambda: len(sched.latest()) == 20)
        # interval 60 s: no second run; add one probe, remove the rest
        sched.drain()
        sched.apply([spec(0), spec(99)])
        assert wait_for(lambda: any(t == "h99.example" for t, _ in runner.calls))
        time.sleep(0.1)
        assert {t for t, _ in runner.calls}.issuperset({"h99.example"})
        assert len(runner.calls) == 21
        assert {s.target for s in sched.specs} == {"h0.example", "h99.example"}
        assert {r.spec.target for r in sched.latest()} == {"h0.example", "h99.example"}
    finally:
        sched.shutdown()


def test_interval_change_reschedules():
    runner = FakeRunner()
    sched = Scheduler(threading.Event(), runner=runner, spread_seconds=0.1)
    sched.start()
    try:
        sched.apply([spec(1, interval_seconds=300)])
        assert wait_for(lambda: len(runner.calls) == 1)
        assert wait_for(lambda: len(sched.latest()) == 1)
        first_due = sched._last_due[spec(1).key]
        sched.apply([spec(1, interval_seconds=60)])  # the new interval counts from the last run
        valid = [d for d, _, k, g in sched._heap if g == sched._generation[k]]
        assert valid == [first_due + 60]
    finally:
        sched.shutdown()
