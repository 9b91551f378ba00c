"""Huey is the transport: messages on the wire are Huey messages as JSON, jobs are Huey tasks.

Both transports (the suite's redis-server and the embedded SQLite file), real worker processes.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from huey.registry import Message
from huey.serializer import Serializer
from huey.storage import RedisStorage, SqliteStorage

from tasks import api
from tasks.codec import Delivery, PoisonMessage, decode
from tasks.demo import noop, sleep
from tasks.transport import Outgoing
from tests.helpers.ledger import insert_raw, job_state, load_job, transport_of
from tests.workers import wait_for


@pytest.fixture(params=["redis", "sqlite"])
def app_config(request, app_config):
    """The suite's configuration on each transport (``sqlite``: no Redis, the file in ``instance/``)."""
    if request.param == "sqlite":
        app_config["REDIS_URL"] = None
    return app_config


def engine_of(app):
    """The app's job engine."""
    return app.extensions["jobs"]


def test_the_transport_is_the_storage_of_the_engines_huey(app):
    engine = engine_of(app)
    assert engine.transport is engine.huey.storage
    assert isinstance(engine.huey.serializer, Serializer)
    assert isinstance(engine.huey.storage, (RedisStorage, SqliteStorage))


def test_a_queued_message_is_a_huey_message_in_json(app):
    engine = engine_of(app)
    with app.app_context():
        now_id = sleep.enqueue(0.5)
        later_id = noop.schedule(delay=3600)
    raw_now, raw_later = transport_of(app).payloads([now_id, later_id])

    body = json.loads(raw_now)  # JSON on the wire, not pickle
    assert body["id"] == now_id and body["queue"] == "default" and body["attempt"] == 1
    message = engine.huey.serializer.deserialize(raw_now)
    assert isinstance(message, Message)
    assert (message.id, message.name, message.args, message.kwargs) == (now_id, "demo.sleep", (0.5,), {})
    assert message.retries == api.definition("demo.sleep").retry.attempts - 1 and message.eta is None

    scheduled = engine.huey.serializer.deserialize(raw_later)
    expected = datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(hours=1)
    assert scheduled.name == "demo.noop" and abs(scheduled.eta - expected) < timedelta(minutes=1)

    task = engine.huey.deserialize_task(raw_now)  # Huey's registry knows the name on the wire
    assert (task.id, task.args, type(task).job_name) == (now_id, (0.5,), "demo.sleep")
    assert [t.id for t in engine.huey.pending()] == [now_id]
    assert [t.id for t in engine.huey.scheduled()] == [later_id]
    assert (engine.huey.pending_count(), engine.huey.scheduled_count()) == (1, 1)


def test_the_huey_registry_holds_every_declared_job(app):
    names = engine_of(app).huey.task_names()
    assert set(api.REGISTRY) <= names
    assert {"demo.noop", "demo.sleep", "demo.fail", "demo.flaky"} <= names


def wait_state(app, job_id: str, state: str, timeout: float = 20):
    """The ledger row of ``job_id`` once it reaches ``state``."""
    wait_for(lambda: job_state(app, job_id) == state, timeout, message=f"{job_id} to be {state}")
    return load_job(app, job_id)


def test_messages_from_before_the_huey_format_run_or_fail_with_a_reason(app, start_worker):
    legacy = insert_raw(app, "demo.noop")
    legacy_payload = json.dumps({"v": 1, "id": legacy, "task": "demo.noop", "queue": "default",
                                 "priority": 0, "args": [], "kwargs": {}, "attempt": 1, "max_attempts": 1})
    transport_of(app).push([Outgoing(legacy, "default", 0, legacy_payload.encode())])
    # what a Huey with its default (pickle) serializer would have left in the queue
    pickled = Serializer().serialize(Message("x", "demo.noop", None, 0, 0, None, (), {}))
    poison = insert_raw(app, "demo.noop", payload=pickled)
    worker = start_worker()
    assert wait_state(app, legacy, "Succeeded").attempt == 1
    failed = wait_state(app, poison, "Failed")
    assert failed.exception_type == "PoisonMessage" and "undecodable message" in failed.exception_message
    with app.app_context():
        after = noop.enqueue()
    wait_state(app, after, "Succeeded")
    assert worker.alive()


def test_a_huey_message_with_fields_of_the_wrong_type_is_poison():
    good = json.loads(Delivery("j1", "demo.sleep", args=[1]).encode())
    assert decode(json.dumps(good)).args == [1]
    for field, value in (("args", "abc"), ("kwargs", [1]), ("retries", "9"), ("attempt", 1.5),
                         ("eta", {"$datetime": "not a time"}), ("name", None)):
        with pytest.raises(PoisonMessage, match="malformed message"):
            decode(json.dumps({**good, field: value}), "j1")


def test_huey_enqueue_and_schedule_reach_the_engines_queues(app):
    engine = engine_of(app)
    with app.app_context():
        job_id = noop.enqueue()
    raw = transport_of(app).payloads([job_id])[0]
    engine.transport.remove([job_id])
    engine.huey.storage.enqueue(raw)
    assert transport_of(app).queue_lengths() == {"default": 1}
    engine.huey.flush()
    assert transport_of(app).holds([job_id]) == set()
    soon = datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(minutes=5)
    engine.huey.storage.add_to_schedule(raw, soon)
    assert engine.huey.scheduled_count() == 1
    assert engine.huey.storage.read_schedule(soon - timedelta(minutes=1)) == []
    assert engine.huey.scheduled_count() == 1 and transport_of(app).queue_lengths() == {}
    assert engine.huey.storage.read_schedule(soon) == []  # moved in one step: nothing to re-enqueue
    assert transport_of(app).queue_lengths() == {"default": 1} and engine.huey.scheduled_count() == 0
