"""``/healthz`` answering 503 per component: a stopped redis-server, an unreachable database."""
from __future__ import annotations

import pytest

from app import create_app
from app.permissions import HANGFIRE
from tests.helpers.web import sign_in
from tests.services import RedisServer


@pytest.fixture
def own_redis(tmp_path, app_config):
    """A redis-server only this test uses (so stopping it harms no other test)."""
    server = RedisServer(str(tmp_path)).start()
    app_config["REDIS_URL"] = server.url
    yield server
    server.stop()


def test_healthz_503_names_the_transport_when_redis_stops(own_redis, app, make_user):
    client = app.test_client()
    healthy = {"status": "ok", "checks": {"database": "ok", "transport": "ok"}}
    assert client.get("/healthz").get_json() == healthy
    own_redis.stop()
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable",
                                   "checks": {"database": "ok", "transport": "unavailable"}}
    make_user("olivia", permissions=[HANGFIRE])
    detailed = sign_in(app, "olivia").get("/healthz").get_json()
    assert detailed["checks"]["transport"] not in ("ok", "unavailable")  # the error, for a dashboard user
    own_redis.start()
    assert client.get("/healthz").status_code == 200


def test_healthz_503_names_the_database_when_it_is_unreachable(app_config, tmp_path):
    url = ("postgresql+psycopg://nobody:secret@127.0.0.1:1/nowhere?connect_timeout=2"
           if app_config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql")
           else "sqlite:///" + str(tmp_path / "missing" / "folder" / "app.db"))
    broken = create_app({**app_config, "SQLALCHEMY_DATABASE_URI": url})
    response = broken.test_client().get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert body == {"status": "unavailable", "checks": {"database": "unavailable", "transport": "ok"}}
    assert "secret" not in response.get_data(True) and "nobody" not in response.get_data(True)
