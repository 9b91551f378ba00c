"""A readable audit log: action names that match the buttons, a sentence per entry, links to the jobs
(and to the list a bulk action matched); older entries read the same way."""
from __future__ import annotations

import re

from tasks.audit import record_audit
from tests.helpers.web import post_form


def entries(client) -> list[dict]:
    """The audit log as the JSON API answers it, newest first."""
    return client.get("/hangfire/api/audit").get_json()["entries"]


def rows(client) -> list[tuple[str, str]]:
    """(button label, sentence) of each row of the audit page, newest first."""
    html = client.get("/hangfire/audit").get_data(True)
    labels = re.findall(r'class="badge badge-light hf-audit-label">([^<]*)<', html)
    sentences = re.findall(r'data-testid="audit-sentence">([^<]*)<', html)
    return list(zip(labels, sentences))


def test_each_action_reads_as_its_button_and_a_sentence(app, people, jobs, nightly):
    client = people["full"]
    post_form(client, "/hangfire/actions/retry", {"ids": [jobs["failed"], jobs["failed2"], jobs["enqueued"]]})
    post_form(client, "/hangfire/actions/delete", {"job": jobs["scheduled"]})
    post_form(client, "/hangfire/queues/pause", {"queue": "reports"})
    post_form(client, f"/hangfire/recurring/{nightly}/trigger")
    post_form(client, "/hangfire/recurring/actions/disable", {"ids": [nightly]})
    post_form(client, "/hangfire/actions/delete", {"scope": "all", "list": "enqueued", "q": "[1]"})
    assert rows(client) == [
        ("Delete all matching",
         "full started “Delete” on 1 job matching state Enqueued, text “[1]”, in the background"),
        ("Disable", "full disabled recurring job tests.nightly"),
        ("Trigger now", "full triggered recurring job tests.nightly"),
        ("Pause", "full paused queue reports"),
        ("Delete", "full deleted 1 job"),
        ("Retry", "full retried 2 of 3 selected jobs"),
    ]
    api = entries(client)
    assert [e["action"] for e in api] == ["delete-matching", "disable-recurring", "trigger-recurring",
                                          "pause-queue", "delete", "retry"]
    assert api[-1]["label"] == "Retry" and api[-1]["sentence"] == "full retried 2 of 3 selected jobs"


def test_entries_link_to_their_jobs_and_to_what_a_filter_matches(app, people, jobs):
    client = people["full"]
    post_form(client, "/hangfire/actions/retry", {"ids": [jobs["failed"]]})
    post_form(client, "/hangfire/actions/delete", {"scope": "all", "list": "failed", "task": "demo.fail"})
    html = client.get("/hangfire/audit").get_data(True)
    assert f'href="/hangfire/job/{jobs["failed"]}"' in html
    bulk_job = entries(client)[0]["job_ids"][0]
    assert f'href="/hangfire/job/{bulk_job}"' in html  # the background job doing the work
    link = re.search(r'href="([^"]+)" data-testid="audit-filter-link"', html).group(1).replace("&amp;", "&")
    assert link == "/hangfire/jobs/failed?task=demo.fail"


def test_entries_written_before_the_names_were_consistent_read_the_same(app, people):
    with app.app_context():
        record_audit("old", "requeue all matching", job_ids=["f" * 32], job_filter={"state": "Failed"},
                     count=3)
        record_audit("old", "pause queue", job_filter={"queue": "email"}, count=0)
        record_audit("old", "recurring-trigger", job_ids=["e" * 32], job_filter={"recurring_id": "nightly"},
                     count=1)
    assert rows(people["full"]) == [
        ("Trigger now", "old triggered recurring job nightly"),
        ("Pause", "old paused queue email"),
        ("Requeue all matching", "old started “Requeue” on 3 jobs matching state Failed, in the background"),
    ]
