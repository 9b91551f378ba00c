"""The transport contract: every ``Transport`` implementation passes these same tests.

Real Redis (the suite's redis-server) and a real SQLite file; no stand-ins.
"""
from __future__ import annotations

import threading
import time

import pytest

from tasks.transport import Outgoing, Transport, open_transport
from tests.workers import wait_for

WORKER, OTHER = "host:1:aaaa", "host:2:bbbb"


@pytest.fixture(params=["redis", "sqlite"])
def transport(request, redis_server, tmp_path):
    """A fresh transport of each kind, opened by URL like the engine does."""
    if request.param == "redis":
        url = redis_server.url
    else:
        url = f"sqlite:///{tmp_path / 'transport.db'}"
    opened = open_transport(url)
    opened.flush_all()
    yield opened
    opened.flush_all()
    opened.close()


def message(job_id: str, queue: str = "default", priority: int = 0, eta: float | None = None,
            payload: bytes | None = None) -> Outgoing:
    body = payload or (f'{{"v":1,"id":"{job_id}","queue":"{queue}","priority":{priority},'
                       f'"created":{time.time()}}}')
    return Outgoing(job_id, queue, priority, body if isinstance(body, bytes) else body.encode(), eta)


def ids(fetched) -> list[str]:
    return [f.job_id for f in fetched]


def test_is_a_transport(transport):
    assert isinstance(transport, Transport)
    assert transport.ping() is None


def test_fetch_takes_priority_first_then_oldest_and_first_queue_first(transport):
    transport.push([message("a1"), message("a2")])
    transport.push([message("urgent", priority=5)])
    transport.push([message("b1", queue="other")])
    assert ids(transport.fetch(WORKER, ["other", "default"], limit=1)) == ["b1"]
    assert ids(transport.fetch(WORKER, ["other", "default"], limit=10)) == ["urgent", "a1", "a2"]
    assert transport.fetch(WORKER, ["other", "default"], limit=10) == []
    assert set(transport.inflight(WORKER)) == {"b1", "urgent", "a1", "a2"}


def test_fetched_carries_the_payload_queue_and_redeliveries(transport):
    transport.push([message("j1", queue="q1")])
    [fetched] = transport.fetch(WORKER, ["q1"], limit=5)
    assert (fetched.job_id, fetched.queue, fetched.redeliveries) == ("j1", "q1", 0)
    assert b'"id":"j1"' in fetched.payload


def test_ack_forgets_only_what_this_worker_holds(transport):
    transport.push([message("mine"), message("theirs")])
    transport.fetch(WORKER, ["default"], limit=1)
    transport.fetch(OTHER, ["default"], limit=1)
    transport.ack(WORKER, ["mine", "theirs"])
    assert transport.holds(["mine", "theirs"]) == {"theirs"}
    assert transport.inflight(OTHER) == ["theirs"]


def test_hand_back_returns_jobs_to_their_old_place_and_counts_a_lost_worker(transport):
    transport.push([message("first")])
    transport.push([message("second")])
    transport.fetch(WORKER, ["default"], limit=1)
    assert transport.hand_back(WORKER, None, lost=True) == ["first"]
    assert transport.inflight(WORKER) == []
    fetched = transport.fetch(OTHER, ["default"], limit=2)
    assert ids(fetched) == ["first", "second"]
    assert fetched[0].redeliveries == 1
    assert transport.hand_back(WORKER, ["first"]) == []  # not ours any more


def test_hand_back_of_an_undecodable_payload_still_returns_it(transport):
    transport.push([message("poison", payload=b"\xff\xfe not json")])
    transport.fetch(WORKER, ["default"], limit=1)
    assert transport.hand_back(WORKER, None, lost=True) == ["poison"]
    assert ids(transport.fetch(OTHER, ["default"], limit=1)) == ["poison"]


def test_reschedule_replaces_an_in_flight_job_by_its_next_attempt(transport):
    transport.push([message("retry")])
    transport.fetch(WORKER, ["default"], limit=1)
    transport.reschedule(WORKER, [message("retry", eta=time.time() + 3600)])
    assert transport.inflight(WORKER) == []
    assert transport.holds(["retry"]) == {"retry"}
    assert transport.fetch(WORKER, ["default"], limit=1) == []


def test_scheduled_jobs_move_to_their_queue_when_due(transport):
    transport.push([message("later", eta=time.time() + 3600), message("due", eta=time.time() - 1)])
    assert ids(transport.fetch(WORKER, ["default"], limit=5)) == ["due"]  # a past eta is due now
    assert transport.move_due() == []
    transport.push([message("soon", eta=time.time() + 0.05)])
    assert wait_for(transport.move_due, timeout=5, message="the message falling due") == ["soon"]
    assert ids(transport.fetch(WORKER, ["default"], limit=5)) == ["soon"]


def test_remove_and_holds(transport):
    transport.push([message("keep"), message("drop"), message("later", eta=time.time() + 60)])
    transport.remove(["drop", "later"])
    assert transport.holds(["keep", "drop", "later", "never"]) == {"keep"}
    assert transport.queue_lengths() == {"default": 1}
    length, oldest = transport.queue_stats()["default"]
    assert length == 1 and oldest is not None


def test_paused_queues_are_listed_and_resumed(transport):
    transport.pause("reports")
    assert transport.paused() == {"reports"}
    transport.resume("reports")
    assert transport.paused() == set()


def test_wait_returns_when_another_connection_pushes(transport):
    other = open_transport(transport.url)
    got: list = []
    thread = threading.Thread(
        target=lambda: got.extend(transport.fetch(WORKER, ["default"], limit=1, wait=10)))
    thread.start()
    wait_for(thread.is_alive, timeout=5, message="the waiting thread")
    other.push([message("wake")])
    thread.join(10)
    assert not thread.is_alive() and ids(got) == ["wake"]
    other.close()


def test_heartbeats_dead_workers_and_orphans(transport):
    transport.beat(WORKER, {"queues": ["default"]})
    assert [w["id"] for w in transport.workers()] == [WORKER]
    assert transport.claim_dead(60) == []
    assert wait_for(lambda: transport.claim_dead(0.01), timeout=5, message="the silent worker dead") \
        == [WORKER]
    assert transport.claim_dead(0.01) == []  # only one claimant wins
    transport.push([message("orphan")])
    transport.fetch(OTHER, ["default"], limit=1)
    assert transport.orphaned_inflight(set()) == [OTHER]
    assert transport.orphaned_inflight({OTHER}) == []
    transport.beat(OTHER, {})
    transport.retire(OTHER)
    assert transport.workers() == []


def test_leases_are_held_by_one_owner_until_released_or_expired(transport):
    assert transport.lead("role", WORKER, 30)
    assert not transport.lead("role", OTHER, 30)
    assert transport.holder("role") == WORKER
    transport.release("role", OTHER)  # not the holder: nothing happens
    assert transport.holder("role") == WORKER
    transport.release("role", WORKER)
    assert transport.holder("role") is None
    assert transport.lead("role", OTHER, 0.05)
    wait_for(lambda: transport.holder("role") is None, timeout=5, message="the short lease expiring")
    assert transport.lead("role", WORKER, 30)


def test_flush_all_forgets_everything(transport):
    transport.push([message("x")])
    transport.beat(WORKER, {})
    transport.flush_all()
    assert transport.holds(["x"]) == set() and transport.workers() == []
