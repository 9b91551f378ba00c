"""Bad input at enqueue gets a clear error naming what is wrong; good input round-trips.

Table-driven cases for every bad input the engine refuses (on SQLite and PostgreSQL,
whichever the suite runs on), the CLI's answers to absurd values, and property-based
tests (hypothesis) of enqueue and the codec: any value is either refused at enqueue
with the argument named, or stored and delivered unchanged.
"""
from __future__ import annotations

import json
import math
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.extensions import db
from tasks import ArgumentError, PermanentError, enqueue, recurring
from tasks.codec import decode
from tasks.ledger import Job
from tests.helpers.ledger import job_state, load_job, transport_of
from tests.workers import wait_for

SMALL_LIMIT = 2048


@pytest.fixture
def small_args_config(app_config):
    app_config["JOBS_MAX_ARGS_BYTES"] = SMALL_LIMIT
    return app_config


def on_postgres(app) -> bool:
    return app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql")


BAD_CALLS = [
    # (case, args, kwargs, options, error type, text the message must hold)
    ("lone surrogate", ["\ud800"], {}, {}, ArgumentError, "'value' can't be encoded as UTF-8"),
    ("surrogate deep inside", [{"a": ["ok", "\udfff"]}], {}, {}, ArgumentError, "value['a'][1]"),
    ("surrogate in a key", [{"\ud800": 1}], {}, {}, ArgumentError, "can't be encoded as UTF-8"),
    ("not JSON", [{1, 2}], {}, {}, ArgumentError, "'value' is not JSON-serializable"),
    ("NaN", [math.nan], {}, {}, ArgumentError, "is not finite"),
    ("too large", ["x" * (SMALL_LIMIT + 1)], {}, {}, ArgumentError, f"limit of {SMALL_LIMIT:,} bytes"),
    ("unknown queue", [1], {}, {"queue": "nowhere"}, ValueError, "unknown queue 'nowhere'; known queues: "),
    ("absurd delay", [1], {}, {"delay": 1e30}, ValueError, "out of range"),
    ("infinite delay", [1], {}, {"delay": math.inf}, ValueError, "out of range"),
    ("eta in year 9999", [1], {}, {"eta": datetime(9999, 1, 1)}, ValueError, "out of range"),
    ("negative delay", [1], {}, {"delay": -1}, ValueError, "delay must be >= 0"),
]


@pytest.mark.parametrize("case,args,kwargs,options,error,text", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_input_is_refused_naming_it_and_nothing_is_stored(small_args_config, app, case, args, kwargs,
                                                              options, error, text):
    with app.app_context():
        with pytest.raises(error) as raised:
            enqueue("tests.echo", args, kwargs, **options)
        assert text in str(raised.value)
        assert db.session.scalar(db.select(db.func.count()).select_from(Job)) == 0


def test_nul_is_refused_only_where_the_database_refuses_it(app):
    with app.app_context():
        if on_postgres(app):
            with pytest.raises(ArgumentError, match="'value' holds a NUL character"):
                enqueue("tests.echo", ["a\x00b"])
        else:
            job_id = enqueue("tests.echo", ["a\x00b"])
            assert json.loads(load_job(app, job_id).args) == ["a\x00b"]


def test_the_known_queues_are_listed_and_a_declared_queue_is_accepted(app, runner):
    with app.app_context():
        with pytest.raises(ValueError) as raised:
            enqueue("tests.echo", [1], queue="bulk")
        assert "default, email, reports" in str(raised.value)
    result = runner.invoke(args=["jobs", "queues", "declare", "bulk"])
    assert result.exit_code == 0 and "queue bulk declared" in result.output
    assert runner.invoke(args=["jobs", "queues", "declare", "bad name!"]).exit_code == 1
    with app.app_context():
        job_id = enqueue("tests.echo", [1], queue="bulk")
    assert transport_of(app).queue_lengths().get("bulk") == 1 and job_state(app, job_id) == "Enqueued"
    assert "bulk" in runner.invoke(args=["jobs", "queues", "list"]).output.split()


@pytest.mark.parametrize("option,value,text", [
    ("--delay", "1e30", "out of range"), ("--delay", "inf", "out of range"),
    ("--delay", "nan", "out of range"),
    ("--queue", "nowhere", "unknown queue 'nowhere'"), ("--args", '["\\ud800"]', "can't be encoded as UTF-8"),
])
def test_cli_answers_absurd_values_with_an_error_not_a_traceback(app, runner, option, value, text):
    extra = [] if option == "--args" else ["--args", "[1]"]
    result = runner.invoke(args=["jobs", "enqueue", "tests.echo", *extra, option, value])
    assert result.exit_code != 0
    assert text in result.output and "Traceback" not in result.output
    assert not isinstance(result.exception, (ValueError, OverflowError, TypeError))


def test_a_cron_that_never_fires_is_refused_at_declaration_and_by_sync(app, runner):
    from tests.jobs import recurring_tick

    with pytest.raises(ValueError, match="never fires"):
        recurring.recurring("tests.feb-30", cron="0 0 30 2 *")(recurring_tick)
    good = recurring.RecurringDefinition("tests.good", "tests.recurring_tick", "0 3 * * *")
    bad = recurring.RecurringDefinition("tests.feb-30", "tests.recurring_tick", "0 0 30 2 *")
    recurring.DEFINITIONS.update({good.id: good, bad.id: bad})
    try:
        result = runner.invoke(args=["jobs", "recurring", "sync"])
        assert result.exit_code == 1 and "tests.feb-30" in result.output and "never fires" in result.output
        assert "Traceback" not in result.output
        with app.app_context():
            assert db.session.get(recurring.RecurringJob, "tests.good") is not None  # the others were synced
            assert db.session.get(recurring.RecurringJob, "tests.feb-30") is None
    finally:
        recurring.DEFINITIONS.pop(good.id)
        recurring.DEFINITIONS.pop(bad.id)


def test_a_permanent_error_fails_at_once_without_retries(app, start_worker):
    with app.app_context():
        job_id = enqueue("tests.permanent")
    start_worker()
    wait_for(lambda: job_state(app, job_id) == "Failed", message="failed")
    job = load_job(app, job_id)
    assert job.attempt == 1 and job.max_attempts == 6 and job.exception_type == "tasks.retry.PermanentError"


def test_the_email_job_fails_permanently_on_a_refused_attachment(app):
    from app.mail.jobs import MessageRefused, send_email

    assert issubclass(MessageRefused, PermanentError)
    with app.app_context():
        with pytest.raises(MessageRefused, match="attachment"):
            send_email("key-1", ["ann@example.com"], "subject", "body",
                       [{"path": "/etc/passwd", "name": "x"}])


# -- properties ---------------------------------------------------------------------------
json_text = st.text(st.characters(codec=None), max_size=12)  # any code point, lone surrogates included
values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | json_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(json_text, inner, max_size=4),
    max_leaves=12,
)


def encodable(value, allow_nul: bool) -> bool:
    """What enqueue must accept: finite numbers, strings that are UTF-8 (and NUL-free where refused)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return allow_nul or "\x00" not in value
    if isinstance(value, list):
        return all(encodable(v, allow_nul) for v in value)
    if isinstance(value, dict):
        return all(encodable(k, allow_nul) and encodable(v, allow_nul) for k, v in value.items())
    return True


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=values)
def test_any_value_is_refused_naming_the_argument_or_stored_and_sent_unchanged(app, value):
    with app.app_context():
        allow_nul = not on_postgres(app)
        if not encodable(value, allow_nul):
            with pytest.raises(ArgumentError, match="""argument ['"]value"""):
                enqueue("tests.echo", [value])
            return
        job_id = enqueue("tests.echo", [value])
        assert json.loads(db.session.get(Job, job_id).args) == [value]
        message = transport_of(app).fetch("property-test", ["default"], limit=1)[0]
        assert decode(message.payload).args == [value]
        transport_of(app).ack("property-test", [job_id])


def test_accepted_values_run_and_come_back_unchanged(app, start_worker):
    samples = [0, -0.5, 1e308, 2 ** 70, "ünïcödé ✓", "\U0001F600", {"k": [None, True, {"n": "x"}]}, [], {}]
    with app.app_context():
        ids = [enqueue("tests.echo", [value]) for value in samples]
    start_worker()
    for job_id, value in zip(ids, samples):
        wait_for(lambda: job_state(app, job_id) == "Succeeded", message=f"echo {value!r}")
        assert json.loads(load_job(app, job_id).result or "null") == value


def test_delay_as_timedelta_too_large_is_refused(app):
    with app.app_context():
        with pytest.raises(ValueError, match="out of range"):
            enqueue("tests.echo", [1], delay=timedelta(days=10_000_000))
