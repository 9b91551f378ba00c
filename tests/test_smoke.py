def test_healthz(client):
    assert client.get("/healthz").status_code == 200
