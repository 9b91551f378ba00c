"""Retry policies: how many attempts a job gets and how long it waits between them."""
from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

DEFAULT_ATTEMPTS = 10


def hangfire_backoff(attempt: int) -> float:
    """Seconds to wait after failed ``attempt`` (1-based), as Hangfire does.

    ``(n-1)^4 + 15 + random(0..29) * n``: ~15-44 s after the first failure,
    growing to about a day after the ninth.
    """
    return (attempt - 1) ** 4 + 15 + random.randint(0, 29) * attempt


class PermanentError(Exception):
    """Raise it in a job to fail the job at once: no retry will help (bad input, a refused address)."""


Backoff = Callable[[int], float] | Sequence[float] | None


@dataclass(frozen=True)
class RetryPolicy:
    """When and how a failed attempt is retried.

    ``attempts``: total attempts including the first (1 = no retry).
    ``backoff``: a function of the failed attempt number, a list of delays
    (the last one repeats), or None (retry immediately).
    ``only_on`` / ``except_on``: exception types that do / do not get a retry.
    """

    attempts: int = DEFAULT_ATTEMPTS
    backoff: Backoff = hangfire_backoff
    only_on: tuple[type[BaseException], ...] = ()
    except_on: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.attempts, int) or self.attempts < 1:
            raise ValueError(f"retries must be >= 0, got attempts={self.attempts!r}")
        if self.backoff is not None and not callable(self.backoff):
            delays = list(self.backoff)
            if not delays or any(not isinstance(d, (int, float)) or d < 0 for d in delays):
                raise ValueError("backoff list must hold non-negative numbers")

    def should_retry(self, attempt: int, error: BaseException) -> bool:
        """True when failed ``attempt`` gets another try after ``error``."""
        if attempt >= self.attempts or isinstance(error, PermanentError):
            return False
        if self.only_on and not isinstance(error, self.only_on):
            return False
        return not (self.except_on and isinstance(error, self.except_on))

    def delay(self, attempt: int) -> float:
        """Seconds to wait before the attempt after failed ``attempt``."""
        if self.backoff is None:
            return 0.0
        if callable(self.backoff):
            return max(0.0, float(self.backoff(attempt)))
        delays = list(self.backoff)
        return float(delays[min(attempt, len(delays)) - 1])


def policy(retries: int | None = None, backoff: Backoff = hangfire_backoff,
           only_on=(), except_on=()) -> RetryPolicy:
    """Build a policy from decorator-style arguments (``retries`` excludes the first try)."""
    attempts = DEFAULT_ATTEMPTS if retries is None else retries + 1
    as_tuple = lambda v: tuple(v) if isinstance(v, (list, tuple)) else ((v,) if v else ())  # noqa: E731
    return RetryPolicy(attempts, backoff, as_tuple(only_on), as_tuple(except_on))
