"""/openapi.json (OpenAPI 3, every endpoint) and /docs (works with no internet access)."""

from __future__ import annotations

import re

import pytest

EXPECTED = {
    "/api/v1/auth/login": {"post"},
    "/api/v1/api-tokens": {"get", "post"},
    "/api/v1/api-tokens/{token_id}": {"delete"},
    "/api/v1/users": {"get", "post"},
    "/api/v1/nodes": {"get", "post"},
    "/api/v1/nodes/{node_id}": {"get", "patch", "delete"},
    "/api/v1/nodes/{node_id}/token": {"post"},
    "/api/v1/enrollment-tokens": {"get", "post"},
    "/api/v1/enrollment-tokens/{token_id}": {"delete"},
    "/api/v1/prometheus/probes": {"get"},
    "/api/v1/reports/sla": {"get"},
    "/api/v1/probes": {"get", "post"},
    "/api/v1/probes/{probe_id}": {"get", "put", "patch", "delete"},
}
ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", re.I)


@pytest.fixture(scope="module")
def spec(shared_client):
    response = shared_client.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def test_openapi_3(spec):
    assert spec["openapi"].startswith("3.")
    assert spec["info"]["title"] == "Pulse API"


@pytest.mark.parametrize("path", sorted(EXPECTED))
def test_lists_the_endpoints(spec, path):
    assert path in spec["paths"], sorted(spec["paths"])
    methods = {m for m in spec["paths"][path] if m in
               ("get", "put", "post", "patch", "delete")}
    assert methods == EXPECTED[path]
    for operation in (spec["paths"][path][m] for m in methods):
        assert operation.get("summary"), (path, operation)


def test_probe_schema_documents_the_bounds(spec):
    create = spec["components"]["schemas"]["ProbeCreate"]["properties"]
    assert (create["port"]["minimum"], create["port"]["maximum"]) == (1, 65535)
    interval = create["interval_seconds"]
    assert (interval["minimum"], interval["maximum"]) == (60, 300)
    assert (create["count"]["minimum"], create["count"]["maximum"]) == (1, 100)
    assert (create["timeout_seconds"]["minimum"], create["timeout_seconds"]["maximum"]) == (1, 30)
    assert create["interval_seconds"]["default"] == 60
    assert create["count"]["default"] == 10
    assert create["timeout_seconds"]["default"] == 5


def test_the_sla_report_documents_both_of_its_formats(spec):
    """?format=csv answers text/csv: undocumented, schemathesis's content-type check fails."""
    content = spec["paths"]["/api/v1/reports/sla"]["get"]["responses"]["200"]["content"]
    assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/SlaReport"}
    assert content["text/csv"]["schema"] == {"type": "string"}


def test_invalid_input_is_documented_as_400_not_422(spec):
    post = spec["paths"]["/api/v1/probes"]["post"]["responses"]
    assert "400" in post and "422" not in post


def test_error_schema_is_ours(spec):
    error = spec["components"]["schemas"]["Error"]["properties"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"]["type"] == "string"


def test_docs_page_uses_only_local_assets(shared_client):
    response = shared_client.get("/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert not re.search(r"https?://", html), "the docs page must work without internet access"
    assert "//cdn" not in html and "unpkg" not in html and "jsdelivr" not in html
    assets = ASSET.findall(html)
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
    assert "/openapi.json" in html
    for asset in assets:
        assert asset.startswith("/"), asset
        fetched = shared_client.get(asset)
        assert fetched.status_code == 200, asset
        assert len(fetched.data) > 1000, asset
        fetched.close()


@pytest.mark.parametrize("path", ["/docs-assets/../../../../etc/passwd",
                                  "/docs-assets/%2e%2e/%2e%2e/etc/passwd",
                                  "/docs-assets/nope.js"])
def test_asset_route_serves_nothing_else(shared_client, path):
    response = shared_client.get(path)
    assert response.status_code == 404
    assert response.get_json()["code"] == "ERR_NOT_FOUND"
