"""The OpenAPI description: who may read it, that it is valid, and that it describes every JSON route.

:func:`test_every_json_route_is_described` walks ``app.url_map``: every rule under an API prefix
(``/api/``, ``<dashboard>/api/``), and every other route that answers JSON (not as a file
download), must be described for each of its methods. Add ``@documented(...)`` next to a new route.
"""
from __future__ import annotations

import os
import re

import jsonschema_rs
import pytest
from flask import url_for
from werkzeug.routing import IntegerConverter

from app.openapi.registry import operations_of
from app.permissions import ADMIN_ROLE
from app.web import is_api_path
from tests.helpers.web import bearer, bearer_token, sign_in
from tests.test_reports import ready_report

SPEC = "/hangfire/api/openapi.json"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def spec_url(app) -> str:
    """Where the app serves its description."""
    with app.test_request_context():
        return url_for("openapi.spec")


def spec_of(app) -> dict:
    """The description as a bearer-token admin reads it."""
    client = app.test_client()
    response = client.get(spec_url(app), headers=bearer(bearer_token(client, "root")))
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.get_json()


@pytest.fixture
def root(app, make_user) -> int:
    """An admin; returns the user's id."""
    return make_user("root", roles=[ADMIN_ROLE])


def test_any_signed_in_caller_may_read_it_anonymous_get_401(app, make_user, root):
    make_user("ann")  # no permission at all: may still use the token and reports APIs
    anonymous = app.test_client().get(SPEC)
    assert anonymous.status_code == 401 and anonymous.get_json() == {"error": "authentication required"}
    assert sign_in(app, "ann").get(SPEC).get_json()["openapi"] == "3.1.0"
    client = app.test_client()
    assert client.get(SPEC, headers=bearer(bearer_token(client, "ann"))).status_code == 200


def test_the_description_is_valid_openapi_with_valid_schemas(app, root):
    spec = spec_of(app)
    assert spec["openapi"] == "3.1.0" and spec["servers"] == [{"url": "/"}]
    assert set(spec["components"]["securitySchemes"]) == {"bearerAuth", "cookieAuth"}
    operation_ids = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            operation_ids.append(operation["operationId"])
            assert operation["responses"], (method, path)
            declared = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
            assert declared == {part[1:-1] for part in path.split("/") if part.startswith("{")}, path
            schemas = [content["schema"] for answer in operation["responses"].values()
                       for content in answer.get("content", {}).values()]
            schemas += [p["schema"] for p in operation["parameters"]]
            schemas += [c["schema"] for c in operation.get("requestBody", {}).get("content", {}).values()]
            for schema in schemas:
                jsonschema_rs.validator_for(schema)  # raises for a schema that isn't valid JSON Schema
            if operation["security"]:
                assert "401" in operation["responses"], (method, path)
    assert len(operation_ids) == len(set(operation_ids))
    assert spec["paths"]["/api/token"]["post"]["security"] == []
    reports = spec["paths"]["/api/reports/{report_id}"]["get"]["parameters"][0]
    assert reports["schema"] == {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}


@pytest.fixture
def moved_dashboard(app_config):
    """The dashboard (and its API) mounted at ``/ops/jobs``; request it before ``app``."""
    app_config["JOBS_DASHBOARD_PATH"] = "/ops/jobs"


def test_the_description_follows_the_dashboard_path(moved_dashboard, app, root):
    paths = spec_of(app)["paths"]
    assert "/ops/jobs/api/stats" in paths and "/ops/jobs/api/openapi.json" in paths
    assert not any(path.startswith("/hangfire") for path in paths)


def sample_values(rule, ids: dict[str, str]) -> dict[str, str]:
    """Values for ``rule``'s variables: real ids where the walk has them, else placeholders."""
    return {arg: ids.get(arg, "1" if isinstance(rule._converters[arg], IntegerConverter) else "x")
            for arg in rule.arguments}


def answers_json(client, rule, ids: dict[str, str]) -> bool:
    """True when a GET of ``rule`` (as a browser would ask) answers JSON that isn't a file download."""
    path = rule.build(sample_values(rule, ids), append_unknown=False)[1]
    response = client.get(path, headers={"Accept": "text/html,*/*;q=0.8"})
    attachment = response.headers.get("Content-Disposition", "").startswith("attachment")
    return response.mimetype == "application/json" and response.status_code < 400 and not attachment


def test_every_json_route_is_described(app, root, jobs, nightly):
    report_id, _ = ready_report(app, root, "a,b\n")
    ids = {"report_id": str(report_id), "job_id": jobs["failed"], "recurring_id": nightly, "action": "retry"}
    client = sign_in(app, "root")
    spec_paths = spec_of(app)["paths"]
    missing = []
    with app.test_request_context():
        rules = list(app.url_map.iter_rules())
        for rule in rules:
            described = operations_of(app.view_functions[rule.endpoint])
            for method in sorted(set(rule.methods or ()) & set(METHODS)):
                if method in described:
                    continue
                json_route = is_api_path(rule.rule) or (method == "GET" and answers_json(client, rule, ids))
                if json_route:
                    missing.append(f"{method} {rule.rule} ({rule.endpoint})")
    assert missing == [], f"describe these JSON routes with @documented (app.openapi.registry): {missing}"
    assert len(spec_paths) >= 20


def test_the_docs_page_serves_swagger_ui_from_static(app, make_user):
    make_user("ann")
    anonymous = app.test_client().get("/docs/api")
    assert anonymous.status_code == 302 and anonymous.headers["Location"].startswith("/login?next=")
    page = sign_in(app, "ann").get("/docs/api").get_data(True)
    assert f'data-spec-url="{SPEC}"' in page
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in page and "cdn" not in page.lower()
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "LICENSE"):
        assert os.path.isfile(os.path.join(app.static_folder, "vendor", "swagger-ui", name))
    assert app.test_client().get("/static/apidocs.js").status_code == 200


@pytest.mark.browser
@pytest.mark.slow
def test_swagger_ui_renders_the_api_under_the_csp(browser, live_server, make_user, app):
    from tests.browser import DEFAULT_TIMEOUT_MS
    from tests.browser import sign_in as browser_sign_in

    make_user("ann")
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(DEFAULT_TIMEOUT_MS * 2)
    problems: list[str] = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
        page.on("console", lambda msg: problems.append(msg.text)
                if msg.type == "error" and "Content Security Policy" in msg.text else None)
        browser_sign_in(page, "ann")
        page.goto("/docs/api")
        page.locator(".opblock-summary-path", has_text="/api/reports/{report_id}").first.wait_for()
        page.locator(".opblock-summary-path", has_text="/hangfire/api/stats").first.wait_for()
        # "Try it out" as the signed-in user: a real request with the session (and its CSRF token)
        block = page.locator(".opblock-get",
                             has=page.locator(".opblock-summary-path", has_text=re.compile(r"^/api/me$")))
        block.locator(".opblock-summary").click()
        block.locator("button.try-out__btn").click()
        block.locator("button.execute").click()
        block.locator(".live-responses-table .response-col_status", has_text="200").wait_for()
        assert '"username": "ann"' in block.locator(".live-responses-table").inner_text()
    finally:
        context.close()
    assert problems == []
