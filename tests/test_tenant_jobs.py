"""Jobs carry their tenant: set from the signed-in user in a request, explicit ``tenant=`` in code, the
host's otherwise; the worker runs a tenant's job with ``JobContext.tenant`` (and in every log record)
and scoped to that tenant's jobs; a tenant's email goes only to its own users.
"""
from __future__ import annotations

import json

import pytest

import tasks
from app.permissions import HANGFIRE, REPORTS_ACCESS_REVIEW, REPORTS_ALL
from tasks import queries
from tasks.tenancy import scope_to
from tests.helpers.ledger import enqueue, load_job
from tests.helpers.web import PASSWORD, bearer_token, sign_in
from tests.test_cli_accounts import ok, run
from tests.test_engine import wait_state
from tests.test_reports import REPORT_QUEUES, csv_rows, generate, generated_id, wait_ready
from tests.test_tenant_admin import tenant_role, tenant_user


@pytest.fixture
def tenants(app, runner):
    """Tenants acme and globex."""
    for name in ("acme", "globex"):
        ok(run(runner, "tenants", "create", name))
    return "acme", "globex"


def test_code_names_the_tenant_and_the_host_is_the_default(app, tenants):
    host = enqueue(app, "demo.noop", args=())
    acme = enqueue(app, "demo.noop", args=(), tenant="acme")
    assert load_job(app, host).tenant is None and load_job(app, acme).tenant == "acme"
    with app.app_context():
        with pytest.raises(ValueError, match="tenant: no tenant named 'initech'"):
            tasks.enqueue("demo.noop", tenant="initech")
        with pytest.raises(ValueError, match="tenant"):
            tasks.enqueue("demo.noop", tenant=7)
    with app.test_request_context():
        scope_to("acme")
        assert [job.id for job in queries.list_jobs().jobs] == [acme]
        assert queries.get_job(host) is None and queries.get_job(acme).id == acme
        assert queries.state_counts()["Enqueued"] == 1


def test_a_job_enqueued_in_a_request_belongs_to_the_users_tenant(app, runner, tenants):
    app.config["JOBS_DASHBOARD_TENANTS"] = True
    tenant_role(runner, "acme", "Operators", HANGFIRE)
    tenant_user(runner, "acme", "ann", "Operators")
    token = bearer_token(app.test_client(), "ann", PASSWORD, tenant="acme")
    answer = app.test_client().post("/hangfire/api/jobs", json={"task": "demo.noop"},
                                    headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 201, answer.get_data(True)
    job = load_job(app, answer.get_json()["id"])
    assert job.tenant == "acme" and job.enqueued_by == "ann"


def test_the_worker_runs_a_tenants_job_as_that_tenant(app, tenants, start_worker):
    others = [enqueue(app, "demo.noop", args=()), enqueue(app, "demo.noop", args=(), tenant="globex")]
    sibling = enqueue(app, "demo.noop", args=(), tenant="acme")
    job_id = enqueue(app, "tests.tenant_view", args=(), tenant="acme")
    host_job = enqueue(app, "tests.tenant_view", args=())
    start_worker()
    result = json.loads(wait_state(app, job_id, "Succeeded").result)
    assert result["tenant"] == "acme" and result["log_tenant"] == "acme" and result["log_job"] == job_id
    assert load_job(app, result["child"]).tenant == "acme"  # what a tenant's job enqueues is the tenant's
    assert set(result["visible"]) == {job_id, sibling, result["child"]}
    assert not set(others) & set(result["visible"])
    host = json.loads(wait_state(app, host_job, "Succeeded").result)
    assert host["tenant"] is None and load_job(app, host["child"]).tenant is None
    assert set(others) <= set(host["visible"])  # the host's jobs see every tenant's


def test_a_tenants_email_goes_only_to_its_own_users(app, runner, tenants, start_worker):
    tenant_user(runner, "acme", "ann")
    tenant_user(runner, "globex", "gus")
    own = enqueue(app, "email.send", args=("tenant-own", ["ann.acme@example.com"], "Hi", "Hello"),
                  tenant="acme")
    stranger = enqueue(app, "email.send", args=("tenant-stranger", ["gus.globex@example.com"], "Hi", "Hello"),
                       tenant="acme")
    host = enqueue(app, "email.send", args=("host-any", ["gus.globex@example.com"], "Hi", "Hello"))
    start_worker(queues="email")
    assert wait_state(app, own, "Succeeded")
    refused = wait_state(app, stranger, "Failed")
    assert "only to its own users" in refused.exception_message and refused.attempt == 1
    assert wait_state(app, host, "Succeeded")


def test_reports_built_for_a_tenant_see_only_its_data_and_its_people(app, runner, tenants, start_worker):
    for tenant in ("acme", "globex"):
        tenant_role(runner, tenant, "Auditors", REPORTS_ALL, REPORTS_ACCESS_REVIEW)
        tenant_user(runner, tenant, "aud", "Auditors")
        tenant_user(runner, tenant, f"staff-{tenant}")
    enqueue(app, "demo.noop", args=(), tenant="globex")
    acme, globex = sign_in(app, "aud", tenant="acme"), sign_in(app, "aud", tenant="globex")
    start_worker(queues=REPORT_QUEUES)
    review = generated_id(generate(acme, kind="access-review"))
    activity = generated_id(generate(acme, kind="job-activity"))
    theirs = generated_id(generate(globex, kind="access-review"))
    for report_id in (review, activity, theirs):
        wait_ready(app, report_id)
    people = {row[0] for row in csv_rows(acme.get(f"/reports/{review}/download").data)[1:]}
    assert people == {"aud", "staff-acme"}  # globex's users (and the host's) are left out
    tasks_run = [row[1] for row in csv_rows(acme.get(f"/reports/{activity}/download").data)[1:]]
    assert "demo.noop" not in tasks_run  # globex's job isn't in acme's activity
    assert acme.get(f"/reports/{theirs}/download").status_code == 404  # "All reports" stops at the tenant
    assert f"report-{theirs}" not in acme.get("/reports?scope=all").get_data(True)
    assert f"report-{review}" in acme.get("/reports?scope=all").get_data(True)
