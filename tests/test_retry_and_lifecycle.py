"""Retry policies (Hangfire's backoff, options) and the lifecycle's table of transitions."""
from __future__ import annotations

import random

import pytest

from tasks import lifecycle, queries
from tasks.lifecycle import Transition
from tasks.retry import RetryPolicy, hangfire_backoff, policy


def test_hangfire_backoff_matches_the_formula():
    random.seed(7)
    for attempt in range(1, 11):
        delay = hangfire_backoff(attempt)
        base = (attempt - 1) ** 4 + 15
        assert base <= delay <= base + 29 * attempt


def test_policy_attempts_count_the_first_run():
    assert policy().attempts == 10 and policy(retries=0).attempts == 1


def test_fixed_delays_repeat_the_last_and_a_callable_is_called():
    fixed = RetryPolicy(4, [5, 30])
    assert [fixed.delay(n) for n in (1, 2, 3)] == [5, 30, 30]
    assert RetryPolicy(3, lambda n: n * 7).delay(2) == 14
    assert RetryPolicy(3, None).delay(1) == 0


def test_only_on_retries_only_those_exceptions_and_only_while_attempts_last():
    only = policy(retries=2, only_on=TimeoutError)
    assert only.should_retry(1, TimeoutError()) and not only.should_retry(1, ValueError())
    assert not only.should_retry(3, TimeoutError())


@pytest.mark.parametrize("attempts, backoff", [(0, None), (3, [-1])], ids=["no attempts", "negative delay"])
def test_a_policy_refuses_bad_settings(attempts, backoff):
    with pytest.raises(ValueError):
        RetryPolicy(attempts, backoff) if backoff is not None else RetryPolicy(attempts)


def test_a_transition_refuses_columns_its_state_does_not_record():
    with pytest.raises(ValueError, match=r"Succeeded doesn't record \['worker'\]"):
        Transition("j", lifecycle.SUCCEEDED, queries.ledger.utcnow(), fields={"worker": "w1"})


def test_lifecycle_table():
    assert lifecycle.can_move(None, lifecycle.ENQUEUED)
    assert not lifecycle.can_move(lifecycle.SUCCEEDED, lifecycle.PROCESSING)
    assert lifecycle.sources(lifecycle.SUCCEEDED) == {lifecycle.PROCESSING}
    for state in lifecycle.FINAL_STATES:
        assert lifecycle.PROCESSING not in lifecycle.TRANSITIONS[state]
