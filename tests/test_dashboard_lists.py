"""Lists that tell the truth in order: Scheduled by due time, Enqueued as workers take them, the list
menu's counts refreshed with the list, queues no live worker reads flagged on Queues and the overview."""
from __future__ import annotations

import re
from datetime import timedelta

from tasks import lifecycle
from tasks.ledger import utcnow
from tests.helpers.ledger import enqueue, job_state
from tests.workers import wait_for


def listed_ids(client, url: str) -> list[str]:
    """Job ids of the rows on a list page, in order."""
    return re.findall(r'<tr data-job-id="([0-9a-f]+)"', client.get(url).get_data(True))


def next_page(client, url: str) -> str | None:
    """The "next page" link of a list page."""
    match = re.search(r'data-testid="older" href="([^"]+)"', client.get(url).get_data(True))
    return match.group(1).replace("&amp;", "&") if match else None


def test_scheduled_jobs_are_listed_soonest_due_first_across_pages(app, people):
    delays = [600, 57, 3600, 19, 37, 5400, 27, 120]
    by_delay = {delay: enqueue(app, task="demo.noop", args=(), delay=delay) for delay in delays}
    soonest_first = [by_delay[delay] for delay in sorted(delays)]
    client = people["full"]
    html = client.get("/hangfire/jobs/scheduled").get_data(True)
    assert listed_ids(client, "/hangfire/jobs/scheduled") == soonest_first
    assert 'data-testid="list-order">soonest due first' in html
    first = "/hangfire/jobs/scheduled?limit=20"
    api = client.get("/hangfire/api/jobs?state=Scheduled&limit=3").get_json()
    assert [j["id"] for j in api["jobs"]] == soonest_first[:3]
    second = client.get(f"/hangfire/api/jobs?state=Scheduled&limit=3&cursor={api['next_cursor']}").get_json()
    assert [j["id"] for j in second["jobs"]] == soonest_first[3:6]  # the cursor keeps the due order
    assert listed_ids(client, first) == soonest_first


def test_enqueued_jobs_are_listed_in_run_order(app, people):
    low = [enqueue(app, task="demo.noop", args=()) for _ in range(3)]
    urgent = enqueue(app, task="demo.noop", args=(), priority=5)
    later_low = enqueue(app, task="demo.noop", args=())
    client = people["full"]
    assert listed_ids(client, "/hangfire/jobs/enqueued") == [urgent, *low, later_low]
    assert "in the order workers take them" in client.get("/hangfire/jobs/enqueued").get_data(True)
    page = client.get("/hangfire/api/jobs?state=Enqueued&limit=2").get_json()
    rest = client.get(f"/hangfire/api/jobs?state=Enqueued&limit=10&cursor={page['next_cursor']}").get_json()
    assert [j["id"] for j in page["jobs"] + rest["jobs"]] == [urgent, *low, later_low]


def test_a_cursor_of_another_list_order_is_refused(people, app):
    for _ in range(3):
        enqueue(app, task="demo.noop", args=(), delay=60)
    cursor = people["full"].get("/hangfire/api/jobs?limit=1").get_json()["next_cursor"]  # newest-first list
    refused = people["full"].get(f"/hangfire/api/jobs?state=Scheduled&cursor={cursor}")
    assert refused.status_code == 400 and "invalid cursor" in refused.get_json()["error"]
    assert people["full"].get(f"/hangfire/jobs/scheduled?cursor={cursor}").status_code == 400


def test_the_list_menu_counts_come_with_every_refresh(app, people):
    client = people["full"]
    page = client.get("/hangfire/jobs/failed").get_data(True)
    assert re.search(r'data-state-count="enqueued"[^>]*>\s*<span>Enqueued</span><span[^>]*>0<', page)
    enqueue(app, task="demo.noop", args=())
    fragment = client.get("/hangfire/jobs/failed/fragment").get_data(True)
    assert 'data-live-slot="states"' in fragment  # the page script swaps it into the menu
    assert re.search(r'data-state-count="enqueued"[^>]*>\s*<span>Enqueued</span><span[^>]*>1<', fragment)
    assert re.search(r'<option value="enqueued">Enqueued \(1\)</option>', fragment)  # the phone's selector


def test_queues_no_live_worker_reads_are_flagged(app, people, start_worker):
    for _ in range(2):
        enqueue(app, task="demo.noop", args=(), queue="reports")
    start_worker(queues="default")
    probe = enqueue(app, task="demo.noop", args=())
    wait_for(lambda: job_state(app, probe) == lifecycle.SUCCEEDED, message="the worker to run a job")
    client = people["full"]
    html = client.get("/hangfire/queues").get_data(True)
    reports = re.search(r'<tr data-queue="reports"[^>]*>.*?</tr>', html, re.S).group(0)
    default = re.search(r'<tr data-queue="default"[^>]*>.*?</tr>', html, re.S).group(0)
    assert 'data-testid="queue-unread"' in reports and 'class="hf-unread"' in reports
    assert 'data-testid="queue-unread"' not in default
    assert re.search(r'data-testid="queue-workers">1</td>', default)
    overview = client.get("/hangfire/fragment/overview").get_data(True)
    warning = re.search(r'data-testid="unread-queues">(.*?)</div>', overview, re.S).group(1)
    assert "reports" in warning and "2 jobs wait in reports" in warning and "default" not in warning
    stats = client.get("/hangfire/api/stats").get_json()
    assert stats["unread_queues"] == ["reports"]
    assert {q["name"]: q["workers"] for q in stats["queues"]}["default"] == 1


def test_the_overview_says_when_no_worker_runs_at_all(app, people):
    enqueue(app, task="demo.noop", args=())
    html = people["full"].get("/hangfire").get_data(True)
    assert 'data-testid="no-workers"' in html and 'data-testid="unread-queues"' not in html


def test_scheduled_due_column_reads_in_order(app, people):
    enqueue(app, task="demo.noop", args=(), eta=utcnow() + timedelta(minutes=90))
    enqueue(app, task="demo.noop", args=(), delay=30)
    html = people["full"].get("/hangfire/jobs/scheduled").get_data(True)
    dues = re.findall(r'class="hf-col-due"[^>]*><time[^>]*>([^<]+)</time>', html)
    assert len(dues) == 2 and re.fullmatch(r"in \d+ s", dues[0]) and dues[1].startswith("in 1 h")
