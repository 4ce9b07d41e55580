"""Per-run statistics of a probe: loss, RTT distribution and jitter.

Everything is computed on full-precision floats (milliseconds); rounding to two decimals
happens only in ``RunStats.as_result`` when the figures are reported.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RunStats:
    """Figures of one run. RTT figures are None when no sample was received."""

    sent: int
    received: int
    packet_loss_rate: float  # percent, 0–100
    latency_ms: float | None  # mean
    latency_min_ms: float | None
    latency_max_ms: float | None
    latency_median_ms: float | None
    latency_p95_ms: float | None
    latency_variance: float | None  # population variance, ms²
    jitter_ms: float  # mean |RTTi − RTTi−1| over consecutive received samples

    def as_result(self) -> dict[str, float | int | None]:
        """The SPEC §5 result fields, rounded to 2 decimals (None kept as None)."""

        def r(value: float | None) -> float | None:
            return None if value is None else round(value, 2)

        return {
            "latency_ms": r(self.latency_ms),
            "packet_loss_rate": round(self.packet_loss_rate, 2),
            "jitter_ms": round(self.jitter_ms, 2),
            "latency_median_ms": r(self.latency_median_ms),
            "latency_min_ms": r(self.latency_min_ms),
            "latency_max_ms": r(self.latency_max_ms),
            "latency_p95_ms": r(self.latency_p95_ms),
            "latency_variance": r(self.latency_variance),
            "sent": self.sent,
            "received": self.received,
        }


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default) of already sorted values."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    rank = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(sorted_values) - 1)
    frac = rank - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * frac


def compute(samples: Sequence[float | None]) -> RunStats:
    """Statistics of a run from its samples in send order (RTT in ms, None = lost).

    Lost samples count in ``sent`` and the loss rate only; they never enter an RTT figure
    and do not break the jitter chain (jitter pairs consecutive *received* samples).
    """
    rtts = [s for s in samples if s is not None]
    sent, received = len(samples), len(rtts)
    loss = 0.0 if sent == 0 else (sent - received) / sent * 100.0
    if not rtts:
        return RunStats(sent, 0, 100.0 if sent else 0.0, None, None, None, None, None, None, 0.0)
    ordered = sorted(rtts)
    mean = math.fsum(rtts) / received
    variance = math.fsum((x - mean) ** 2 for x in rtts) / received
    jitter = (
        math.fsum(abs(b - a) for a, b in zip(rtts, rtts[1:], strict=False)) / (received - 1)
        if received > 1
        else 0.0
    )
    return RunStats(
        sent=sent,
        received=received,
        packet_loss_rate=loss,
        latency_ms=mean,
        latency_min_ms=ordered[0],
        latency_max_ms=ordered[-1],
        latency_median_ms=percentile(ordered, 50),
        latency_p95_ms=percentile(ordered, 95),
        latency_variance=variance,
        jitter_ms=jitter,
    )
