"""The dashboard with tenants: off by default for tenant users (ABP's enableTenant), and when on, every
way a tenant user can name a job — URL, id prefix search, filters, bulk "all matching", export,
continuation link, audit entry, JSON API — leaves another tenant's job out or answers 404; counts
never include other tenants' jobs. Host users see every job, with its tenant, and filter by tenant.
"""
from __future__ import annotations

import json

import pytest

import tasks

from app.permissions import ADMIN_ROLE, HANGFIRE
from tasks import lifecycle
from tests.helpers.ledger import enqueue, failed_job, job_state, load_job
from tests.helpers.web import bearer_token, csrf_for, sign_in
from tests.test_cli_accounts import ok, run
from tests.test_engine import wait_state
from tests.test_tenant_admin import tenant_role, tenant_user

API = "/hangfire/api"


@pytest.fixture
def app_config(app_config):
    """Tenant users may open the dashboard (scoped to their tenant)."""
    return {**app_config, "JOBS_DASHBOARD_TENANTS": True}


@pytest.fixture
def world(app, runner, make_user):
    """acme (user ann) and globex (user gus), each with an operator role, one Enqueued and one Failed job
    (same task and error text), and a host job; returns the job ids by name."""
    for tenant, user in (("acme", "ann"), ("globex", "gus")):
        ok(run(runner, "tenants", "create", tenant))
        tenant_role(runner, tenant, "Operators", HANGFIRE)
        tenant_user(runner, tenant, user, "Operators")
    make_user("root", roles=[ADMIN_ROLE])
    jobs = {"host": enqueue(app, "demo.sleep", args=(0.01,))}
    for tenant in ("acme", "globex"):
        jobs[f"{tenant}_enqueued"] = enqueue(app, "demo.sleep", args=(0.01,), tenant=tenant)
        jobs[f"{tenant}_failed"] = failed_job(app, message="kaput", tenant=tenant)
    jobs["acme_child"] = enqueue(app, "demo.noop", args=(), after=jobs["acme_enqueued"], tenant="acme")
    jobs["host_child"] = enqueue(app, "demo.noop", args=(), after=jobs["acme_enqueued"])  # the host may
    return jobs


@pytest.fixture
def ann(app, world):
    """acme's operator, signed in."""
    return sign_in(app, "ann", tenant="acme")


@pytest.fixture
def ann_api(app, world):
    """acme's operator with a bearer token: ``ann_api(method, url, **kwargs)``."""
    token = bearer_token(app.test_client(), "ann", tenant="acme")

    def call(method: str, url: str, **kwargs):
        return getattr(app.test_client(), method)(url, headers={"Authorization": f"Bearer {token}"}, **kwargs)

    return call


def theirs(world) -> list[str]:
    """Every job ann must never see: the host's and globex's."""
    return [world["host"], world["host_child"], world["globex_enqueued"], world["globex_failed"]]


def test_tenant_users_are_refused_while_the_switch_is_off(app, world):
    app.config["JOBS_DASHBOARD_TENANTS"] = False
    ann = sign_in(app, "ann", tenant="acme")
    assert ann.get("/hangfire/").status_code == 403
    assert ann.get(f"{API}/stats").status_code == 403
    token = bearer_token(app.test_client(), "ann", tenant="acme")
    auth = {"Authorization": f"Bearer {token}"}
    assert app.test_client().get(f"{API}/jobs", headers=auth).status_code == 403
    assert sign_in(app, "root").get("/hangfire/").status_code == 200


def test_another_tenants_job_page_is_404(ann, ann_api, world):
    for job_id in theirs(world):
        for url in (f"/hangfire/job/{job_id}", f"/hangfire/job/{job_id}/fragment",
                    f"/hangfire/job/{job_id}/arguments.json"):
            assert ann.get(url).status_code == 404, url
        assert ann_api("get", f"{API}/jobs/{job_id}").status_code == 404
    assert ann.get(f"/hangfire/job/{world['acme_failed']}").status_code == 200
    assert ann_api("get", f"{API}/jobs/{world['acme_failed']}").get_json()["tenant"] == "acme"


def test_id_prefix_and_short_id_search_leave_another_tenants_job_out(ann, ann_api, world):
    for job_id in theirs(world):
        for typed in (job_id[:16], "#" + job_id[-8:], job_id):
            go = ann.get("/hangfire/search", query_string={"q": typed}).headers["Location"]
            assert "/job/" not in go, typed  # not to the job: to a search, which finds nothing
            assert f"/job/{job_id}" not in ann.get(go).get_data(True), typed  # no row links to it
            found = ann_api("get", f"{API}/search", query_string={"q": typed}).get_json()
            assert "/job/" not in json.dumps(found), typed  # no suggestion leads to the job
        page = ann.get("/hangfire/jobs/all", query_string={"id": job_id[:16]}).get_data(True)
        assert f"/job/{job_id}" not in page
    mine = world["acme_failed"]
    assert mine in ann.get("/hangfire/search", query_string={"q": "#" + mine[-8:]}).headers["Location"]


def test_filters_lists_and_counts_leave_other_tenants_out(ann, ann_api, world):
    listed = ann_api("get", f"{API}/jobs", query_string={"q": "kaput"}).get_json()
    assert [job["id"] for job in listed["jobs"]] == [world["acme_failed"]] and listed["count"] == 1
    every = ann_api("get", f"{API}/jobs", query_string={"limit": 100}).get_json()
    mine = {world["acme_enqueued"], world["acme_failed"], world["acme_child"]}
    assert {job["id"] for job in every["jobs"]} == mine
    sneaky = ann_api("get", f"{API}/jobs", query_string={"tenant": "globex"}).get_json()
    assert sneaky["jobs"] == []
    stats = ann_api("get", f"{API}/stats").get_json()
    assert stats["states"][lifecycle.FAILED] == 1 and stats["states"][lifecycle.ENQUEUED] == 1
    assert stats["states"][lifecycle.AWAITING] == 1  # the host's child waiting on acme's job is left out
    assert stats["recurring"] == 0
    queues = {q["name"]: q["length"] for q in ann_api("get", f"{API}/queues").get_json()["queues"]}
    assert queues["default"] == 1  # acme's one Enqueued job, not the host's or globex's
    page = ann.get("/hangfire/jobs/failed").get_data(True)
    assert world["acme_failed"][-8:] in page and world["globex_failed"][-8:] not in page
    overview = ann.get("/hangfire/").get_data(True)
    assert overview.count("kaput") == 0 or world["globex_failed"] not in overview


def test_export_holds_only_the_tenants_jobs(ann, world):
    exported = json.loads(ann.get("/hangfire/jobs/all/export.json").get_data(True))
    mine = {world[name] for name in ("acme_enqueued", "acme_failed", "acme_child")}
    assert {row["id"] for row in exported} == mine
    csv = ann.get("/hangfire/jobs/failed/export.csv").get_data(True)
    assert world["acme_failed"] in csv and world["globex_failed"] not in csv


def test_continuation_links_leave_another_tenants_job_out(app, ann, world):
    parent = ann.get(f"/hangfire/job/{world['acme_enqueued']}").get_data(True)
    assert world["acme_child"][-8:] in parent  # its own continuation is linked...
    assert world["host_child"][-8:] not in parent  # ...the host's waiting on it is left out
    with app.app_context(), pytest.raises(ValueError, match="to continue after"):
        tasks.enqueue("demo.noop", after=world["globex_failed"], tenant="acme")  # never across tenants


def test_actions_by_id_and_bulk_all_matching_never_touch_another_tenant(app, ann, ann_api, world,
                                                                        start_worker):
    by_id = ann_api("post", f"{API}/actions/delete", json={"ids": theirs(world)})
    assert by_id.status_code == 200 and by_id.get_json()["changed"] == []
    assert ann_api("post", f"{API}/jobs/{world['globex_failed']}/retry").get_json()["changed"] == []
    everything = ann_api("post", f"{API}/actions/retry", json={"filter": {}, "all": True})
    assert everything.get_json()["estimate"] == 1  # acme's one failure, not globex's
    ann_api("post", f"{API}/actions/delete", json={"ids": [everything.get_json()["bulk_job_id"]]})
    bulk = ann_api("post", f"{API}/actions/delete", json={"filter": {"task": "demo.sleep"}})
    assert bulk.status_code == 202 and bulk.get_json()["estimate"] == 2
    start_worker()
    wait_state(app, bulk.get_json()["bulk_job_id"], lifecycle.SUCCEEDED)
    assert job_state(app, world["acme_failed"]) == lifecycle.DELETED
    assert job_state(app, world["globex_failed"]) == lifecycle.FAILED
    assert job_state(app, world["globex_enqueued"]) in (lifecycle.ENQUEUED, lifecycle.SUCCEEDED)
    assert job_state(app, world["host"]) in (lifecycle.ENQUEUED, lifecycle.PROCESSING, lifecycle.SUCCEEDED)
    form = ann.post("/hangfire/actions/delete", data={"ids": theirs(world), "csrf_token": csrf_for(ann)})
    assert form.status_code == 302 and job_state(app, world["globex_failed"]) == lifecycle.FAILED


def test_audit_entries_of_another_tenant_are_left_out(app, ann, ann_api, world):
    gus = sign_in(app, "gus", tenant="globex")
    gus.post("/hangfire/actions/retry", data={"job": world["globex_failed"], "csrf_token": csrf_for(gus)})
    ann_api("post", f"{API}/jobs/{world['acme_failed']}/retry")
    entries = ann_api("get", f"{API}/audit").get_json()["entries"]
    assert [entry["user"] for entry in entries] == ["ann"]
    assert "gus" not in ann.get("/hangfire/audit").get_data(True)
    host = sign_in(app, "root").get(f"{API}/audit").get_json()["entries"]
    assert {entry["user"] for entry in host} == {"ann", "gus"}


def test_servers_and_queues_show_tenants_only_what_is_safe(app, ann, ann_api, world, start_worker):
    worker = start_worker()
    servers = []
    for _ in range(200):
        servers = ann_api("get", f"{API}/servers").get_json()["servers"]
        if servers:
            break
        wait_state(app, world["acme_enqueued"], lifecycle.SUCCEEDED)
    assert servers and all(s["host"] is None and s["pid"] is None for s in servers)
    assert all(s["id"].startswith("worker ") for s in servers)
    assert str(worker.pid) not in ann.get("/hangfire/servers").get_data(True)
    paused = ann_api("post", f"{API}/queues/pause", json={"queue": "default"})
    assert paused.status_code == 400 and "host" in paused.get_json()["error"]
    assert ann_api("get", f"{API}/recurring").get_json()["recurring"] == []


def test_host_users_see_every_tenant_with_its_tenant_and_filter_by_it(app, world):
    root = sign_in(app, "root")
    every = root.get(f"{API}/jobs", query_string={"limit": 100}).get_json()
    assert {job["tenant"] for job in every["jobs"]} == {None, "acme", "globex"}
    acme = root.get(f"{API}/jobs", query_string={"tenant": "acme", "limit": 100}).get_json()
    assert {job["tenant"] for job in acme["jobs"]} == {"acme"} and acme["count"] == 3
    assert root.get(f"/hangfire/job/{world['globex_failed']}").status_code == 200
    stats = root.get(f"{API}/stats").get_json()
    assert stats["states"][lifecycle.FAILED] == 2


def test_host_pages_show_the_tenant_and_tenant_pages_dont(app, ann, world):
    root = sign_in(app, "root")
    listed = root.get("/hangfire/jobs/failed", query_string={"tenant": "globex"}).get_data(True)
    assert world["globex_failed"][-8:] in listed and world["acme_failed"][-8:] not in listed
    assert 'hf-tenant" title="Tenant">globex<' in listed and 'id="f-tenant"' in listed
    page = root.get(f"/hangfire/job/{world['acme_failed']}").get_data(True)
    assert 'data-testid="job-tenant">acme<' in page
    own = ann.get("/hangfire/jobs/failed").get_data(True)
    assert 'id="f-tenant"' not in own and "hf-tenant" not in own
    assert "job-tenant" not in ann.get(f"/hangfire/job/{world['acme_failed']}").get_data(True)


@pytest.fixture
def tenant_recurring(app, world, nightly):
    """Recurring jobs declared for acme and for globex, beside the host's ``nightly``; returns their ids."""
    from tasks import recurring
    from tests.jobs import recurring_tick

    ids = {tenant: f"{tenant}.digest" for tenant in ("acme", "globex")}
    for tenant, recurring_id in ids.items():
        recurring.recurring(recurring_id, cron="0 6 * * *", tenant=tenant)(recurring_tick)
    with app.app_context():
        assert recurring.sync()["errors"] == {}
    yield ids
    for recurring_id in ids.values():
        recurring.DEFINITIONS.pop(recurring_id, None)


def test_a_tenant_lists_and_acts_on_its_own_recurring_jobs_only(app, ann, ann_api, tenant_recurring, nightly):
    listed = ann_api("get", f"{API}/recurring").get_json()["recurring"]
    assert [row["id"] for row in listed] == ["acme.digest"]
    page = ann.get("/hangfire/recurring").get_data(True)
    assert "acme.digest" in page and "globex.digest" not in page and nightly not in page
    assert ann_api("get", f"{API}/stats").get_json()["recurring"] == 1
    for foreign in ("globex.digest", nightly):
        assert ann_api("post", f"{API}/recurring/{foreign}/trigger").status_code == 404
        assert ann_api("post", f"{API}/recurring/{foreign}/delete").status_code == 404
    bulk = ann_api("post", f"{API}/recurring/actions/disable", json={"ids": ["globex.digest", nightly]})
    assert bulk.status_code == 404
    triggered = ann_api("post", f"{API}/recurring/acme.digest/trigger")
    assert triggered.status_code == 200
    job = ann_api("get", f"{API}/jobs", query_string={"recurring": "acme.digest"}).get_json()["jobs"]
    assert [row["tenant"] for row in job] == ["acme"]
    root = sign_in(app, "root")
    every = {row["id"]: row for row in root.get(f"{API}/recurring").get_json()["recurring"]}
    assert {"acme.digest", "globex.digest", nightly} <= set(every)
    assert (every["globex.digest"]["tenant"], every[nightly]["tenant"]) == ("globex", None)
    assert all(row["enabled"] for row in every.values())  # none of ann's refused actions took


def test_runs_of_a_tenants_recurring_job_are_that_tenants_jobs(app, tenant_recurring):
    from datetime import timedelta

    from app.extensions import db
    from tasks import recurring
    from tasks.ledger import utcnow

    with app.app_context():
        started = recurring.run_due(utcnow() + timedelta(days=2))
        rows = {tenant: db.session.get(recurring.RecurringJob, recurring_id)
                for tenant, recurring_id in tenant_recurring.items()}
        owners = {row.last_job_id: tenant for tenant, row in rows.items()}
    assert set(owners) <= set(started)
    for job_id, tenant in owners.items():
        assert load_job(app, job_id).tenant == tenant


def test_host_pages_name_the_tenant_of_a_recurring_job(app, ann, tenant_recurring):
    page = sign_in(app, "root").get("/hangfire/recurring").get_data(True)
    assert 'data-testid="recurring-tenant">acme<' in page and 'data-testid="recurring-tenant">globex<' in page
    assert "recurring-tenant" not in ann.get("/hangfire/recurring").get_data(True)


def test_a_recurring_job_with_a_bad_tenant_name_is_refused_at_declaration():
    from tasks.recurring import recurring
    from tests.jobs import recurring_tick

    for bad in ("", "x" * 65, 7):
        with pytest.raises(ValueError, match="tenant"):
            recurring("bad.tenant", cron="0 6 * * *", tenant=bad)(recurring_tick)


def test_the_metrics_count_every_tenant_so_tenant_users_are_refused_them(app, ann, ann_api, world):
    assert ann.get("/hangfire/metrics").status_code == 403
    assert ann_api("get", f"{API}/metrics").status_code == 403
    scrape = ann_api("get", "/metrics")
    assert scrape.status_code == 403 and "host users" in scrape.get_json()["error"]
    assert 'href="/hangfire/metrics"' not in ann.get("/hangfire/").get_data(True)
    root = sign_in(app, "root")
    assert root.get("/hangfire/metrics").status_code == 200 and root.get("/metrics").status_code == 200
    assert 'href="/hangfire/metrics"' in root.get("/hangfire/").get_data(True)


def test_a_tenants_charts_count_its_own_finished_jobs_in_their_hour(app, world):
    from datetime import timedelta

    from tasks import queries
    from tasks.ledger import bucket_of, utcnow
    from tasks.tenancy import scope_to

    with app.test_request_context():
        scope_to("acme")
        hours = queries.throughput(utcnow() - timedelta(days=1), 3600)
    failed_hour = bucket_of(load_job(app, world["acme_failed"]).finished_at, 3600)
    assert {hour["start"]: hour["failed"] for hour in hours}.get(failed_hour) == 1  # acme's, in its hour
    assert sum(hour["failed"] + hour["succeeded"] for hour in hours) == 1  # not globex's
