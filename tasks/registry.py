"""The job registry: every job the code declares (``@job``), by name, with how it is queued and retried.

The engine, the worker and the dashboard read it; :mod:`tasks.api` fills it.
"""
from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tasks.retry import RetryPolicy

DEFAULT_QUEUE = "default"


class UnknownTask(LookupError):
    """No job is registered under that name."""


@dataclass(frozen=True)
class JobDefinition:
    """A registered job: the function and how it is queued and retried."""

    name: str
    func: Callable
    queue: str = DEFAULT_QUEUE
    priority: int = 0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    display_name: str | None = None
    wants_context: bool = False
    description: str = ""
    timeout: float | None = None
    unique: Any = None  # True (task + arguments), a key format string, or a callable
    unique_window: float = 86400.0
    mutex: str | None = None  # key format string: jobs with the same key never overlap
    internal: bool = False  # enqueued by the application only: the dashboard doesn't offer or accept it

    @property
    def signature(self) -> inspect.Signature:
        """The function's signature without the injected ``context`` parameter."""
        return public_signature(self.func)

    def check_call(self, args: Sequence, kwargs: Mapping) -> None:
        """Raise ``TypeError`` naming the problem when ``args``/``kwargs`` don't fit the function."""
        error = call_shape_error(self.func, len(args), tuple(sorted(kwargs)))
        if error:
            raise TypeError(f"{self.name}: {error}")

    def check_keys(self, args: Sequence, kwargs: Mapping) -> None:
        """Raise ``ValueError`` when the ``mutex``/``unique`` key templates can't be filled from the
        arguments."""
        for option, template in (("mutex", self.mutex), ("unique", self.unique)):
            if isinstance(template, str):
                try:
                    template.format(*args, **kwargs)
                except (IndexError, KeyError, ValueError, AttributeError) as exc:
                    raise ValueError(f"{self.name}: {option} key {template!r} can't be built from the "
                                     f"arguments ({type(exc).__name__}: {exc})") from None

    def parameter_names(self) -> list[str]:
        """Positional parameter names, for naming bad arguments."""
        return [n for n, p in self.signature.parameters.items()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]

    def describe(self, args: Sequence, kwargs: Mapping) -> str:
        """Human name of one run, e.g. ``Report 'activity' for 2026-11``."""
        if not self.display_name:
            return self.name
        try:
            return self.display_name.format(*args, **kwargs)[:255]
        except (IndexError, KeyError, ValueError, AttributeError):
            return self.display_name[:255]


@functools.lru_cache(maxsize=None)
def public_signature(func: Callable) -> inspect.Signature:
    """``func``'s signature without ``context`` (cached: checked on every enqueue)."""
    sig = inspect.signature(func)
    return sig.replace(parameters=[p for n, p in sig.parameters.items() if n != "context"])


@functools.lru_cache(maxsize=4096)
def call_shape_error(func: Callable, positional: int, keywords: tuple[str, ...]) -> str | None:
    """Why a call with this many positional arguments and these keywords doesn't fit ``func`` (None if
    it does).

    Binding depends only on the call's shape, not its values, so a bulk enqueue checks it once.
    """
    try:
        public_signature(func).bind(*range(positional), **dict.fromkeys(keywords))
        return None
    except TypeError as exc:
        return str(exc)


REGISTRY: dict[str, JobDefinition] = {}
_DECLARATIONS = [0]  # how many times a job was declared: engines re-sync their Huey registry when it moves


def declarations() -> int:
    """How many job declarations have happened in this process (a change means the registry changed)."""
    return _DECLARATIONS[0]


def definition(name_or_fn: str | Callable) -> JobDefinition:
    """The registered definition for a name, a job function, or a decorated function."""
    if isinstance(getattr(name_or_fn, "definition", None), JobDefinition):
        return name_or_fn.definition  # a JobFunction (what ``@job`` returns)
    name = name_or_fn if isinstance(name_or_fn, str) else getattr(name_or_fn, "job_name", None)
    if name is None or name not in REGISTRY:
        raise UnknownTask(f"no job registered as {name!r}; known: {', '.join(sorted(REGISTRY)) or 'none'}")
    return REGISTRY[name]


def add(new: JobDefinition) -> None:
    """Register ``new`` under its name; ``ValueError`` if a different function already holds the name
    (the same function declared again, e.g. on a module reload, replaces it)."""
    current = REGISTRY.get(new.name)
    if current is not None and current.func is not new.func:
        if (current.func.__module__, current.func.__qualname__) != (new.func.__module__,
                                                                    new.func.__qualname__):
            raise ValueError(f"a different job is already registered as {new.name!r}")
    REGISTRY[new.name] = new
    _DECLARATIONS[0] += 1
