"""/metrics stays bounded whatever clients send (issue 14: the HTTP method label was
taken verbatim, so `curl -X FOO123 …` made a new series each time: 2,000 requests grew
the output from 74 to 468 KB)."""

from __future__ import annotations

from app.telemetry import method_label, status_label


def _series(client) -> list[str]:
    text = client.get("/metrics").get_data(as_text=True)
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_two_thousand_odd_methods_add_no_series(client):
    for i in range(20):  # the "other" series exist once
        client.open("/api/v1/nodes", method=f"WARM{i}")
        client.open(f"/no/such/{i}", method=f"WARM{i}")
    before = _series(client)
    for i in range(2000):
        client.open("/api/v1/nodes" if i % 2 else f"/x/{i}", method=f"FOO{i}")
    after = _series(client)
    assert len(after) == len(before)
    assert not [line for line in after if "FOO" in line or "/x/" in line]
    assert 'method="other"' in "\n".join(after)


def test_labels_come_from_known_sets():
    assert method_label("GET") == "GET" and method_label("get") == "other"
    assert method_label("FOO123") == "other"
    assert status_label(404) == "404" and status_label(418) == "other"
    assert status_label(599) == "other"
