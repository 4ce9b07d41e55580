"""SPEC §11's judgement, without storage: minutes with and without data, null latency,
hysteresis, resolution after 2 clean minutes, node_offline and drift."""

from __future__ import annotations

import pytest

from app.alerts.conditions import (
    MINUTE_MS,
    NO_DATA,
    Run,
    judge,
    judge_drift,
    judge_offline,
    latest_minute_ms,
    minutes,
    values_of,
)

T0 = 1_800_000_000_000 - 1_800_000_000_000 % MINUTE_MS


def run(minute: int, second: int = 5, loss: float = 0.0, latency: float | None = 10.0) -> Run:
    return Run(T0 + minute * MINUTE_MS + second * 1000, latency,
               None if latency is None else latency + 2, loss, None if latency is None else 1.0)


def loss_values(runs, interval=60, last=None, count=3):
    last = T0 + (last if last is not None else runs[-1].ts_ms // MINUTE_MS - T0 // MINUTE_MS) \
        * MINUTE_MS
    return values_of(minutes(runs, interval, last, count), "packet_loss_rate")


def test_a_minute_takes_its_own_runs_mean():
    runs = [run(0, 5, loss=0), run(0, 35, loss=50)]
    assert loss_values(runs, count=1) == [25.0]


def test_a_minute_without_a_run_carries_the_last_one_within_interval_plus_60s():
    runs = [run(0, 50, loss=40)]
    # 60 s probe: reach 120 s before a minute's end -> minute 1 carries it, minute 2 not
    assert loss_values(runs, last=2, count=3) == [40.0, 40.0, NO_DATA]


def test_a_300s_probe_has_data_in_every_minute_between_runs():
    runs = [run(0, 0, loss=30), run(5, 0, loss=30)]
    assert loss_values(runs, interval=300, last=5, count=6) == [30.0] * 6


def test_the_current_minute_counts_once_it_has_a_run():
    runs = [run(0), run(1)]
    now = T0 + MINUTE_MS + 20_000  # 20 s into minute 1, which has its run
    assert latest_minute_ms(runs, now, 60) == T0 + MINUTE_MS
    assert latest_minute_ms(runs[:1], now, 60) == T0


def test_a_minute_whose_run_has_not_arrived_yet_is_not_judged_on_a_copy():
    """One bad run must not make two bad minutes: minute 1 is complete but its run (the
    Beacon reports later in the minute) is not there yet."""
    runs = [run(0, 10, loss=50)]
    now = T0 + 2 * MINUTE_MS + 5_000
    last = latest_minute_ms(runs, now, 60)
    assert last == T0
    values = values_of(minutes(runs, 60, last, 2), "packet_loss_rate")
    assert judge(None, values, ">", 5.0, 5.0, 2) == "pending"
    # once the run is out of reach, the last complete minute is judged: no data
    later = T0 + 3 * MINUTE_MS + 15_000
    assert latest_minute_ms(runs, later, 60) == T0 + 2 * MINUTE_MS
    assert values_of(minutes(runs, 60, T0 + 2 * MINUTE_MS, 1), "packet_loss_rate") == [NO_DATA]


@pytest.mark.parametrize(("state", "values", "expected"), [
    (None, [0.0, 0.0, 50.0], "pending"),
    (None, [0.0, 50.0, 50.0], "firing"),  # for_minutes=2: two bad minutes fire at once
    ("pending", [0.0, 50.0, 50.0], "firing"),
    ("pending", [0.0, 50.0, 0.0], "ok"),
    ("pending", [50.0, 50.0, NO_DATA], "ok"),  # a minute without data breaks it
    (None, [50.0, NO_DATA, 50.0], "pending"),
    ("firing", [50.0, 0.0, 0.0], "resolved"),
    ("firing", [50.0, 50.0, 0.0], None),  # one clean minute is not enough
    ("firing", [0.0, 0.0, NO_DATA], None),  # no data does not resolve
])
def test_loss_over_5_for_2_minutes(state, values, expected):
    assert judge(state, values, ">", 5.0, 5.0, 2) == expected


def test_a_flapping_path_never_fires_with_for_minutes_3():
    state = None
    series = [0.0, 50.0] * 10
    for end in range(3, len(series) + 1):
        new = judge(state, series[end - 3:end], ">", 5.0, 5.0, 3)
        assert new != "firing"
        state = {"pending": "pending", "ok": None, None: state}[new]


def test_hysteresis_keeps_firing_until_below_the_recovery_threshold():
    # latency > 100 fires; resolves only below 80
    assert judge("firing", [90.0, 90.0], ">", 100.0, 80.0, 2) is None
    assert judge("firing", [79.0, 70.0], ">", 100.0, 80.0, 2) == "resolved"
    assert judge("pending", [120.0, 90.0], ">", 100.0, 80.0, 3) == "ok"


def test_null_latency_neither_fires_nor_resolves_nor_clears():
    assert judge(None, [150.0, None, 150.0], ">", 100.0, 100.0, 3) == "pending"
    assert judge(None, [150.0, 150.0, None], ">", 100.0, 100.0, 2) is None
    assert judge("pending", [150.0, 150.0, None], ">", 100.0, 100.0, 3) is None
    assert judge("firing", [10.0, None], ">", 100.0, 100.0, 2) is None
    assert judge("firing", [None, None], ">", 100.0, 100.0, 2) is None


def test_a_dead_run_has_null_latency_but_full_loss():
    runs = [run(0, latency=None, loss=100)]
    window = minutes(runs, 60, T0, 1)
    assert values_of(window, "latency_ms") == [None]
    assert values_of(window, "packet_loss_rate") == [100.0]


def test_below_rules_fire_downward():
    assert judge(None, [0.5, 0.4], "<", 1.0, 1.0, 2) == "firing"
    assert judge("firing", [2.0, 2.0], "<=", 1.0, 1.5, 2) == "resolved"


def test_node_offline():
    assert judge_offline(None, 179, 3) is None
    assert judge_offline(None, 180, 3) == "firing"
    assert judge_offline("firing", 600, 3) is None
    assert judge_offline("firing", 30, 3) == "resolved"


def test_drift_fires_after_for_minutes_and_resolves_after_2_clear_minutes():
    assert judge_drift(None, True, 0, None, 3) == "pending"
    assert judge_drift("pending", True, 2, None, 3) is None
    assert judge_drift("pending", True, 3, None, 3) == "firing"
    assert judge_drift("pending", False, 1, 0, 3) == "ok"
    assert judge_drift("firing", False, 9, 1, 3) is None
    assert judge_drift("firing", False, 9, 2, 3) == "resolved"
    assert judge_drift("firing", True, 9, None, 3) is None
