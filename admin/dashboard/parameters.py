"""A job's parameters as the enqueue form sees them: their names, types (from the function's
annotations), defaults and help, and a check of given values against those types.

Understood annotations: ``int``, ``float`` (an int is fine), ``str``, ``bool``, ``list``/``list[X]``,
``tuple``, ``dict``/``dict[K, V]``, ``X | None``/``Optional[X]`` and unions, ``Any``; anything else
(or no annotation) accepts any JSON value.
"""
from __future__ import annotations

import inspect
import re
import types
import typing
from dataclasses import dataclass
from typing import Any

from tasks.registry import JobDefinition

#: how a type reads in messages: "a number", "a whole number", …
NAMES = {int: "a whole number", float: "a number", str: "text", bool: "true or false", list: "a list",
         tuple: "a list", dict: "an object", type(None): "null"}


def annotations_of(definition: JobDefinition) -> dict[str, Any]:
    """The job function's resolved annotations (``{}`` when they can't be resolved)."""
    try:
        return typing.get_type_hints(definition.func)
    except Exception:  # noqa: BLE001 - an unresolvable annotation means "no check", never a crash
        return {}


def options(annotation: Any) -> tuple[Any, ...]:
    """The members of a union (``X | None`` → ``(X, None)``), else the annotation alone."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def describe(annotation: Any) -> str:
    """``float``, ``list[int]``, ``str | None`` — as written in Python."""
    if annotation is inspect.Parameter.empty:
        return ""
    if annotation is type(None):
        return "None"
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return " | ".join(describe(member) for member in typing.get_args(annotation))
    if typing.get_origin(annotation) is not None:
        inner = ", ".join(describe(arg) for arg in typing.get_args(annotation))
        return f"{typing.get_origin(annotation).__name__}[{inner}]"
    return getattr(annotation, "__name__", str(annotation))


def shown(value: Any) -> str:
    """A value as a message quotes it: text in quotes, the rest as Python writes it (cut short)."""
    text = f"“{value}”" if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:59] + "…"


def fits(value: Any, annotation: Any) -> bool:
    """True when ``value`` (decoded JSON) is acceptable for ``annotation``."""
    if annotation in (inspect.Parameter.empty, Any, object):
        return True
    if annotation is None or annotation is type(None):
        return value is None
    members = options(annotation)
    if len(members) > 1:
        return any(fits(value, member) for member in members)
    origin = typing.get_origin(annotation) or annotation
    if origin is bool:
        return isinstance(value, bool)
    if origin is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin is str:
        return isinstance(value, str)
    if origin in (list, tuple, typing.Sequence, typing.Iterable):
        return isinstance(value, list) and items_fit(value, typing.get_args(annotation))
    if origin in (dict, typing.Mapping):
        return isinstance(value, dict) and entries_fit(value, typing.get_args(annotation))
    return True  # a type the form can't check: the job gets what JSON gives


def items_fit(value: list, args: tuple) -> bool:
    """True when every item of a list fits ``list[X]`` (or ``tuple[X, ...]``)."""
    if not args:
        return True
    item = args[0]
    return all(fits(element, item) for element in value)


def entries_fit(value: dict, args: tuple) -> bool:
    """True when every key and value of an object fits ``dict[K, V]``."""
    if len(args) != 2:
        return True
    key, item = args
    return all(fits(k, key) and fits(v, item) for k, v in value.items())


def expected(annotation: Any) -> str:
    """What ``annotation`` asks for, in words: "a number (float)"."""
    members = [m for m in options(annotation) if m is not type(None)]
    words = " or ".join(NAMES.get(typing.get_origin(m) or m, describe(m)) for m in members) or "null"
    if type(None) in options(annotation):
        words += " (or null)"
    return f"{words} ({describe(annotation)})"


@dataclass(frozen=True)
class Parameter:
    """One parameter of a job: name, kind, annotation, default."""

    name: str
    kind: Any
    annotation: Any
    default: Any

    @property
    def required(self) -> bool:
        """True when a value must be given."""
        return self.default is inspect.Parameter.empty and self.kind not in (
            inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)

    @property
    def variadic(self) -> bool:
        """True for ``*args`` or ``**kwargs``."""
        return self.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)

    @property
    def type_text(self) -> str:
        """The annotation as written (empty when there is none)."""
        return describe(self.annotation)

    @property
    def takes_text(self) -> bool:
        """True when the form field's text is the value itself (a ``str`` parameter)."""
        return self.annotation is str or (
            str in options(self.annotation) and set(options(self.annotation)) <= {str, type(None)})

    @property
    def default_text(self) -> str:
        """The default as the form shows it."""
        return "" if self.default is inspect.Parameter.empty else repr(self.default)

    def problem(self, value: Any) -> str | None:
        """Why ``value`` doesn't fit this parameter, or None."""
        wanted = expected(self.annotation)
        if self.kind is inspect.Parameter.VAR_POSITIONAL:
            bad = [v for v in value if not fits(v, self.annotation)]
            return f"each extra argument must be {wanted}; got {shown(bad[0])}" if bad else None
        if self.kind is inspect.Parameter.VAR_KEYWORD:
            bad = [k for k, v in value.items() if not fits(v, self.annotation)]
            return f"“{bad[0]}” must be {wanted}; got {shown(value[bad[0]])}" if bad else None
        if fits(value, self.annotation):
            return None
        return f"expected {expected(self.annotation)}, got {shown(value)}"


def parameters(definition: JobDefinition) -> list[Parameter]:
    """The job's parameters (without the injected ``context``), with resolved annotations."""
    hints = annotations_of(definition)
    return [Parameter(name, p.kind, hints.get(name, inspect.Parameter.empty), p.default)
            for name, p in definition.signature.parameters.items()]


def signature_text(definition: JobDefinition) -> str:
    """``demo.sleep(seconds: float)``: the call as a person would write it."""
    parts = []
    for p in parameters(definition):
        star = "*" if p.kind is inspect.Parameter.VAR_POSITIONAL else "**" if p.variadic else ""
        typed = f": {p.type_text}" if p.type_text else ""
        default = f" = {p.default_text}" if p.default_text else ""
        parts.append(f"{star}{p.name}{typed}{default}")
    return f"{definition.name}({', '.join(parts)})"


def summary(definition: JobDefinition) -> str:
    """The first line of the job's help, as plain text."""
    return plain_help(definition.func.__doc__).split("\n", 1)[0]


def type_problems(definition: JobDefinition, args: list, kwargs: dict) -> dict[str, str]:
    """``{parameter: message}`` for every given value that doesn't fit its annotation.

    Arguments that don't bind at all are left to the signature check (``check_call``).
    """
    try:
        bound = definition.signature.bind(*args, **kwargs)
    except TypeError:
        return {}
    by_name = {p.name: p for p in parameters(definition)}
    problems = {}
    for name, value in bound.arguments.items():
        problem = by_name[name].problem(value)
        if problem:
            problems[name] = problem
    return problems


ROLE = re.compile(r":[a-z]+:`(~?)([^`]+)`")
LITERAL = re.compile(r"``([^`]+)``")
EMPHASIS = re.compile(r"(?<![\w*])\*{1,2}([^*\s][^*]*?)\*{1,2}(?![\w*])")


def plain_help(doc: str | None) -> str:
    """A docstring as plain text: reStructuredText roles, literals and emphasis become their words."""
    text = inspect.cleandoc(doc or "")
    text = ROLE.sub(lambda m: m.group(2).rsplit(".", 1)[-1] if m.group(1) else m.group(2), text)
    return EMPHASIS.sub(r"\1", LITERAL.sub(r"\1", text)).strip()
