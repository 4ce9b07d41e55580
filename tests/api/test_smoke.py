def test_healthz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_create_probe(client, operator, node):
    r = client.post("/api/v1/probes", json={"node_id": node["id"], "type": "tcp",
                                             "target": "example.com", "port": 443},
                    headers=operator.headers)
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["type"] == "TCP"
