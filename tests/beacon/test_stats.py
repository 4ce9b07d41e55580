import math
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from beacon.stats import compute, percentile

rtt = st.floats(min_value=0.0, max_value=60000.0, allow_nan=False, allow_infinity=False)
samples = st.lists(st.one_of(st.none(), rtt), min_size=1, max_size=100)


def test_known_run():
    s = compute([10.0, None, 12.0, 11.0, None])
    assert (s.sent, s.received) == (5, 3)
    assert s.packet_loss_rate == 40.0
    assert s.latency_ms == pytest.approx(11.0)
    assert (s.latency_min_ms, s.latency_max_ms, s.latency_median_ms) == (10.0, 12.0, 11.0)
    # consecutive received samples: |12-10| and |11-12| -> mean 1.5; the lost ones are skipped
    assert s.jitter_ms == pytest.approx(1.5)
    assert s.latency_variance == pytest.approx(2 / 3)
    assert s.latency_p95_ms == pytest.approx(11.9)


def test_all_lost_and_single_sample():
    s = compute([None, None])
    assert s.packet_loss_rate == 100.0 and s.latency_ms is None and s.jitter_ms == 0.0
    r = s.as_result()
    assert r["latency_median_ms"] is None and r["sent"] == 2 and r["received"] == 0
    one = compute([5.0])
    assert one.jitter_ms == 0.0 and one.latency_p95_ms == 5.0 and one.latency_variance == 0.0


def test_rounding_only_when_reported():
    s = compute([1.004, 1.006])
    assert s.latency_ms == pytest.approx(1.005)
    assert s.as_result()["latency_ms"] in (1.0, 1.01)
    assert s.as_result()["jitter_ms"] == 0.0


@given(samples)
def test_properties(values):
    s = compute(values)
    got = [v for v in values if v is not None]
    assert s.sent == len(values) and s.received == len(got)
    assert 0.0 <= s.packet_loss_rate <= 100.0
    assert s.packet_loss_rate == pytest.approx((len(values) - len(got)) / len(values) * 100)
    if not got:
        assert s.latency_ms is None and s.jitter_ms == 0.0
        return
    lo, hi = min(got), max(got)
    eps = 1e-9 * max(1.0, hi)
    for v in (s.latency_ms, s.latency_median_ms, s.latency_p95_ms):
        assert lo - eps <= v <= hi + eps
    assert s.latency_min_ms == lo and s.latency_max_ms == hi
    assert s.latency_median_ms == pytest.approx(statistics.median(got), rel=1e-9, abs=1e-9)
    assert s.latency_variance == pytest.approx(statistics.pvariance(got), rel=1e-6, abs=1e-6)
    assert 0.0 <= s.jitter_ms <= hi - lo + eps


@given(samples)
def test_lost_samples_never_change_rtt_figures(values):
    got = [v for v in values if v is not None]
    s1, s2 = compute(values), compute(got) if got else None
    if s2 is None:
        return
    assert s1.latency_ms == s2.latency_ms and s1.jitter_ms == s2.jitter_ms
    assert s1.latency_p95_ms == s2.latency_p95_ms


@given(st.lists(rtt, min_size=1, max_size=50))
def test_percentile_monotone(values):
    ordered = sorted(values)
    assert percentile(ordered, 50) <= percentile(ordered, 95) <= ordered[-1]
    assert math.isclose(percentile(ordered, 100), ordered[-1])
