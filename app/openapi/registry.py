"""Declaring a JSON route's contract next to the route: :func:`documented` and schema helpers.

A view function decorated with ``@documented(...)`` carries an :class:`Operation` per HTTP
method (``view.openapi``); :mod:`app.openapi.spec` walks ``app.url_map`` and turns every
documented rule into an OpenAPI 3.1 path item. Flask-Admin's wrapper keeps the attribute
(``functools.wraps`` copies ``__dict__``), so the dashboard API's methods are documented the same
way, with ``@documented`` placed under ``@expose``.

Schemas are plain JSON Schema 2020-12 dictionaries (what OpenAPI 3.1 uses); the helpers keep them
short: ``obj(id=INTEGER, title=STRING, required=["id"])``, ``nullable(STRING)``, ``array_of(...)``.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Schema = dict[str, Any]

STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
NUMBER: Schema = {"type": "number"}
BOOLEAN: Schema = {"type": "boolean"}
ANY: Schema = {}
DATE_TIME: Schema = {"type": "string", "format": "date-time"}

#: who may call an operation: the security requirement objects it lists
PUBLIC: tuple = ()
SIGNED_IN: tuple = ({"bearerAuth": []}, {"cookieAuth": []})


def obj(required: Iterable[str] | None = None, additional: bool | Schema = True,
        **properties: Schema) -> Schema:
    """An object schema with ``properties``; ``required`` defaults to all of them."""
    schema: Schema = {"type": "object", "properties": dict(properties),
                      "required": sorted(properties if required is None else required)}
    if additional is not True:
        schema["additionalProperties"] = additional
    return schema


def nullable(schema: Schema) -> Schema:
    """``schema`` or ``null``."""
    kind = schema.get("type")
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def array_of(items: Schema) -> Schema:
    """An array of ``items``."""
    return {"type": "array", "items": items}


def enum(values: Iterable[str]) -> Schema:
    """A string that is one of ``values``."""
    return {"type": "string", "enum": list(values)}


ERROR: Schema = obj(error=STRING, required=["error"])


@dataclass(frozen=True)
class Param:
    """A query (or header) parameter."""

    name: str
    schema: Schema
    description: str = ""
    required: bool = False
    where: str = "query"

    def as_openapi(self) -> dict:
        """The OpenAPI parameter object."""
        found = {"name": self.name, "in": self.where, "required": self.required, "schema": self.schema}
        return found | ({"description": self.description} if self.description else {})


@dataclass(frozen=True)
class Response:
    """One documented answer: its description and body (JSON schema, or a media type for files)."""

    description: str
    schema: Schema | None = None
    media_types: tuple[str, ...] = ("application/json",)
    headers: Mapping[str, str] = field(default_factory=dict)

    def as_openapi(self) -> dict:
        """The OpenAPI response object."""
        found: dict = {"description": self.description}
        if self.schema is not None:
            found["content"] = {media: {"schema": self.schema} for media in self.media_types}
        if self.headers:
            found["headers"] = {name: {"description": text, "schema": STRING}
                                for name, text in self.headers.items()}
        return found


def error(description: str) -> Response:
    """A ``{"error": ...}`` answer."""
    return Response(description, ERROR)


#: answers every operation may give: the app refuses NUL characters in URLs and malformed JSON bodies
#: before any view runs (app.inputs)
MALFORMED = {400: error("a malformed request: NUL characters in the URL, or a body that isn't usable JSON")}
#: answers every signed-in operation may give
AUTH_ERRORS = {401: error("no valid bearer token or session")}


@dataclass(frozen=True)
class Operation:
    """What one method of one route takes and gives."""

    summary: str
    responses: Mapping[int, Response]
    body: Schema | Callable[[], Schema] | None = None  # a callable: asked when the description is built
    body_required: bool = True
    query: tuple[Param, ...] = ()
    path: Mapping[str, Schema] = field(default_factory=dict)
    security: tuple = SIGNED_IN
    tags: tuple[str, ...] = ()
    description: str = ""


def documented(summary: str, responses: Mapping[int, Response | Schema], *, methods: Iterable[str] = ("GET",),
               body: Schema | Callable[[], Schema] | None = None, body_required: bool = True,
               query: Iterable[Param] = (), path: Mapping[str, Schema] | None = None,
               security: tuple = SIGNED_IN,
               tags: Iterable[str] = (), description: str = "") -> Callable:
    """Attach an :class:`Operation` for each of ``methods`` to the decorated view.

    ``responses`` maps a status to a :class:`Response` (or to a bare schema, described as "OK");
    every operation also documents 400 (a malformed request) unless it describes its own, and
    signed-in operations 401. ``path`` gives schemas for path parameters the URL
    converter doesn't already say (e.g. an ``enum`` of actions); ``body`` may be a function giving the
    schema when the description is built (e.g. an ``enum`` of registered tasks). The function is
    returned unchanged.
    """
    answers = {status: answer if isinstance(answer, Response) else Response("OK", answer)
               for status, answer in responses.items()}
    answers = {**MALFORMED, **(AUTH_ERRORS if security else {}), **answers}
    operation = Operation(summary, answers, body, body_required, tuple(query), dict(path or {}),
                          tuple(security), tuple(tags), description)

    def attach(view: Callable) -> Callable:
        """Record the operation on ``view`` (by method) and give it back."""
        view.__dict__.setdefault("openapi", {}).update({method.upper(): operation for method in methods})
        return view

    return attach


def operations_of(view: Callable | None) -> Mapping[str, Operation]:
    """The operations documented on ``view`` (a function, bound method or Flask-Admin wrapper)."""
    return getattr(view, "openapi", None) or {}
