"""Chart data shaped for the pages: sparkline geometry and uPlot's columnar series.

Both keep the rule of SPEC §10: where there was no data there is a gap, and a run that
received nothing has no latency (never drawn as 0).
"""

from __future__ import annotations

from dataclasses import dataclass

from app.history.columns import Columns

SPARK_WIDTH, SPARK_HEIGHT = 120, 24
LIVE_HOUR_MS = 3_600_000


def loss_class(loss: float | None) -> str:
    """The loss colour class of SPEC §10's thresholds: 0, < 5, < 20, ≥ 20 %."""
    if loss is None:
        return "loss-none"
    if loss <= 0:
        return "loss-0"
    if loss < 5:
        return "loss-5"
    if loss < 20:
        return "loss-20"
    return "loss-high"


@dataclass
class Sparkline:
    lines: list[str]  # SVG polyline "x,y x,y …", one per run of consecutive minutes
    dead: list[float]  # x of minutes with loss but no latency (nothing received)
    peak_ms: float | None
    lossy: bool


def sparkline(points: list[tuple[int, float | None, float]]) -> Sparkline | None:
    """Geometry of the live hour (a point per minute): the latency line broken at every
    missing minute, and a mark where nothing was received."""
    if not points:
        return None
    end = points[-1][0]
    start = end - LIVE_HOUR_MS + 60_000
    latencies = [lat for _ts, lat, _loss in points if lat is not None]
    peak = max(latencies) if latencies else None
    lines, current, dead, previous = [], [], [], None

    def close() -> None:
        if len(current) == 1:  # a lone minute: a dot-sized segment
            x, y = current[0].split(",")
            current.append(f"{float(x) + 1},{y}")
        if current:
            lines.append(" ".join(current))
        current.clear()

    for ts, latency, _loss in points:
        if ts < start:
            continue
        x = round((ts - start) / (LIVE_HOUR_MS - 60_000) * SPARK_WIDTH, 1)
        if latency is None:
            dead.append(x)
        if latency is None or (previous is not None and ts - previous > 60_000):
            close()
        if latency is not None:
            y = SPARK_HEIGHT - 2 - (latency / peak * (SPARK_HEIGHT - 4) if peak else 0)
            current.append(f"{x},{round(y, 1)}")
        previous = ts
    close()
    return Sparkline(lines, dead, peak, any(loss > 0 for _ts, _lat, loss in points))


SERIES_FIELDS = {  # uPlot series name -> point field
    "median": "latency_median_ms", "min": "latency_min_ms", "max": "latency_max_ms",
    "p95": "latency_p95_ms", "mean": "latency_ms", "loss": "packet_loss_rate",
    "jitter": "jitter_ms",
}


def columnar(columns: Columns, step_seconds: int) -> dict[str, list]:
    """uPlot's arrays (time in epoch seconds) from a probe's columns (history.columns),
    with an all-null point inserted after any point followed by silence longer than two
    steps, so no line crosses an outage. The median line falls back to the mean for
    points that carry no median; a run that received nothing has no latency or jitter."""
    loss = columns["packet_loss_rate"]
    dead = [i for i, value in enumerate(loss) if value is not None and value >= 100]
    series = {"t": [ms / 1000 for ms in columns["ts_ms"]]}
    for name, field in SERIES_FIELDS.items():
        values = list(columns[field])
        if name == "median":
            mean = columns["latency_ms"]
            for i in [i for i, value in enumerate(values) if value is None]:
                values[i] = mean[i]
        if name != "loss":
            for i in dead:
                values[i] = None
        series[name] = values
    times, limit = series["t"], 2 * step_seconds
    gaps = [i for i in range(1, len(times)) if times[i] - times[i - 1] > limit]
    for i in reversed(gaps):  # from the end, so earlier indexes stay valid
        gap_at = times[i - 1] + step_seconds
        for name, values in series.items():
            values.insert(i, gap_at if name == "t" else None)
    return series
