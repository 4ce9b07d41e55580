"""The judgement of SPEC §11, free of storage: per-minute values and what a rule makes of them.

A probe's minute "has data" when a run falls within `interval_seconds` + 60 s before the
minute's end (so a 300 s probe alerts too): its value is the mean of the runs stamped in
that minute, or else the latest run before it within that reach. A minute without data
breaks a condition; a minute whose latency is null (nothing received) is *neutral* for a
latency rule: it neither fires, nor resolves, nor clears a pending alert.

The evaluated minutes end at the minute of the newest run (the current minute once it
has a run): the heartbeat that completes `for_minutes` is judged at the next evaluation,
not a minute later, and a minute whose run has not arrived yet is not judged on a copy
of the previous one. Once the newest run is out of reach, they end at the last complete
minute, which then has no data.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import NamedTuple

MINUTE_MS = 60_000
CLEAN_MINUTES = 2  # resolved after this many clean minutes
NO_DATA = "no-data"  # a minute without a run in reach (a float is a value, None neutral)

OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
METRIC_FIELDS = {"latency_ms": 0, "latency_p95_ms": 1, "packet_loss_rate": 2, "jitter_ms": 3}


class Run(NamedTuple):
    """What evaluation needs of a probe run (or of a stored minute aggregate)."""

    ts_ms: int
    latency_ms: float | None
    latency_p95_ms: float | None
    packet_loss_rate: float
    jitter_ms: float | None


class Minute(NamedTuple):
    """A minute's values, in METRIC_FIELDS order; None where nothing was received."""

    latency_ms: float | None
    latency_p95_ms: float | None
    packet_loss_rate: float
    jitter_ms: float | None


def latest_minute_ms(runs: Sequence[Run], now_ms: int, interval_seconds: int) -> int:
    """The last minute to judge: the minute of the newest run while that run is within
    reach of now (minutes after it have no run of their own *yet*: judging them on a copy
    of it would count one run twice and fire early), else the last complete minute.
    `runs` are sorted by time and none is later than now."""
    current = now_ms - now_ms % MINUTE_MS
    if runs and now_ms - runs[-1].ts_ms <= (interval_seconds + 60) * 1000:
        return runs[-1].ts_ms - runs[-1].ts_ms % MINUTE_MS
    return current - MINUTE_MS


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _fold(runs: Sequence[Run]) -> Minute:
    if len(runs) == 1:
        run = runs[0]
        return Minute(run.latency_ms, run.latency_p95_ms, run.packet_loss_rate, run.jitter_ms)
    return Minute(
        _mean([r.latency_ms for r in runs if r.latency_ms is not None]),
        _mean([r.latency_p95_ms for r in runs if r.latency_p95_ms is not None]),
        sum(r.packet_loss_rate for r in runs) / len(runs),
        _mean([r.jitter_ms for r in runs if r.jitter_ms is not None]),
    )


def minutes(runs: Sequence[Run], interval_seconds: int, last_minute_ms: int,
            count: int) -> list[Minute | None]:
    """The `count` minutes ending at `last_minute_ms`, oldest first; None = no data.

    `runs` sorted by time, none later than the evaluation time.
    """
    reach_ms = (interval_seconds + 60) * 1000
    result: list[Minute | None] = []
    index = 0
    first = last_minute_ms - (count - 1) * MINUTE_MS
    for start in range(first, last_minute_ms + MINUTE_MS, MINUTE_MS):
        end = start + MINUTE_MS
        while index < len(runs) and runs[index].ts_ms < start:
            index += 1
        own_end = index
        while own_end < len(runs) and runs[own_end].ts_ms < end:
            own_end += 1
        if own_end > index:
            result.append(_fold(runs[index:own_end]))
        elif index and runs[index - 1].ts_ms >= end - reach_ms:
            previous = runs[index - 1]
            result.append(Minute(previous.latency_ms, previous.latency_p95_ms,
                                 previous.packet_loss_rate, previous.jitter_ms))
        else:
            result.append(None)
    return result


def values_of(window: Sequence[Minute | None], metric: str) -> list[float | None | str]:
    """A metric's values over the window: a float, None (neutral) or NO_DATA."""
    field = METRIC_FIELDS[metric]
    return [NO_DATA if m is None else m[field] for m in window]


def _breaches(value, op: str, threshold: float) -> bool:
    return isinstance(value, float | int) and OPS[op](value, threshold)


def _clean(value, op: str, recovery: float) -> bool:
    return isinstance(value, float | int) and not OPS[op](value, recovery)


def judge(state: str | None, values: Sequence[float | None | str], op: str, threshold: float,
          recovery: float, for_minutes: int) -> str | None:
    """The state a probe alert moves to, or None to stay.

    `state` is the open alert's (pending, firing) or None; `values` the last
    max(for_minutes, 2) minutes, oldest first.
    """
    fires = len(values) >= for_minutes and all(
        _breaches(v, op, threshold) for v in values[-for_minutes:])
    latest = values[-1]
    if state is None:
        if fires:
            return "firing"
        return "pending" if _breaches(latest, op, threshold) else None
    if state == "pending":
        if fires:
            return "firing"
        if latest is None or _breaches(latest, op, threshold):
            return None  # neutral, or still breaching: stays pending
        return "ok"
    if state == "firing" and all(_clean(v, op, recovery)
                                 for v in values[-CLEAN_MINUTES:]):
        return "resolved"
    return None


def judge_offline(state: str | None, silent_seconds: float, for_minutes: int) -> str | None:
    """node_offline: fires once the node has been silent `for_minutes`; resolves once it
    has reported within the last 2 minutes (its return)."""
    if state is None and silent_seconds >= for_minutes * 60:
        return "firing"
    if state == "firing" and silent_seconds < CLEAN_MINUTES * 60:
        return "resolved"
    return None


def judge_drift(state: str | None, drifted: bool, minutes_in_state: int,
                minutes_clear: int | None, for_minutes: int) -> str | None:
    """drift: pending from the first evaluation that sees the instance drifted, firing
    once it has stayed so `for_minutes`, resolved after 2 minutes without drift.

    `minutes_in_state`: whole minutes since the alert opened; `minutes_clear`: whole
    minutes since drift was last seen gone (None while drifted)."""
    if state is None:
        if not drifted:
            return None
        return "firing" if for_minutes <= 0 else "pending"
    if state == "pending":
        if not drifted:
            return "ok"
        return "firing" if minutes_in_state >= for_minutes else None
    if state == "firing" and not drifted and minutes_clear is not None \
            and minutes_clear >= CLEAN_MINUTES:
        return "resolved"
    return None
