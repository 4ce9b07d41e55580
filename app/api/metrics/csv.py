"""The metrics query as CSV (format=csv or Accept: text/csv), streamed row by row."""

from __future__ import annotations

import csv
import io

from flask import Response, request, stream_with_context

from app.timeutil import from_ms, iso_utc

COLUMNS = ("timestamp", "latency_ms", "packet_loss_rate", "jitter_ms", "latency_min_ms",
           "latency_median_ms", "latency_p95_ms", "latency_max_ms", "sent", "received",
           "error", "jitter_max_ms", "packet_loss_max", "sample_count")


def wants_csv() -> bool:
    return request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv"


def csv_response(answer: dict) -> Response:
    """The answer's points, one CSV row each (empty cells where a value is null)."""
    aggregated = answer["resolution"] != "raw"
    columns = [c for c in COLUMNS if aggregated or c not in
               ("jitter_max_ms", "packet_loss_max", "sample_count")]
    if aggregated:
        columns.remove("error")

    def rows():
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for point in answer["points"]:
            writer.writerow([iso_utc(from_ms(point["ts_ms"])) if c == "timestamp"
                             else _cell(point.get(c)) for c in columns])
            if buffer.tell() > 64 * 1024:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    name = f"pulse-{answer['node_id']}-{answer['probe_id'] or 'node'}-{answer['resolution']}.csv"
    return Response(stream_with_context(rows()), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _cell(value) -> str:
    return "" if value is None else str(value)
