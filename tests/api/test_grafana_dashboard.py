"""deploy/grafana/pulse-probes.json charts only series the Prometheus export produces."""

from __future__ import annotations

import json
import re
from pathlib import Path

from app.api.prometheus.resources import PROBE_METRICS

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "pulse-probes.json"
EXPORTED = {name for name, *_ in PROBE_METRICS} | {"pulse_node_up"}
LABELS = {"node", "node_id", "probe", "probe_id", "type"}


def test_every_query_uses_exported_series_and_labels():
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs.append(dashboard["templating"]["list"][1]["query"])
    assert len(exprs) >= 9
    for expr in exprs:
        series = set(re.findall(r"\bpulse_[a-z0-9_]+", expr))
        assert series and series <= EXPORTED, expr
        assert set(re.findall(r"(\w+)=~?\"", expr)) <= LABELS, expr
    for panel in dashboard["panels"]:
        for legend in re.findall(r"\{\{(\w+)\}\}", json.dumps(panel)):
            assert legend in LABELS, (panel["title"], legend)
