"""Limits on what a request may carry, checked before any view sees it.

* JSON bodies are parsed by :class:`BoundedRequest`: malformed JSON, JSON nested deeper than
  ``JSON_MAX_DEPTH`` and strings holding NUL or a lone surrogate all answer 400 ``invalid JSON: ...``,
  whichever view reads the body (the token API, the dashboard's JSON API), even one asking ``silent=True``.
* NUL characters in the path, the query string or form fields answer 400 before the view runs:
  PostgreSQL refuses them in text, and no name, address or search term holds one.
* Bodies over ``MAX_CONTENT_LENGTH`` answer 413 (Flask's own check).
* ``<id:...>`` in a route matches only ids a database column can hold (else 404).

Errors a request causes (4xx) answer JSON to API callers and keep Flask's page otherwise.
"""
from __future__ import annotations

from typing import Any

from flask import Flask, Request, current_app, request
from werkzeug.exceptions import BadRequest, UnsupportedMediaType
from werkzeug.routing import IntegerConverter


NUL = "\x00"
MAX_ID = 2**31 - 1  # the largest id an INTEGER column holds on PostgreSQL (ids are Integer)


class InvalidJSON(BadRequest):
    """A JSON body that can't be used: malformed, too deep, or holding NUL."""

    def __init__(self, reason: str):
        super().__init__(f"invalid JSON: {reason}")


def unstorable(text: str) -> bool:
    """True for text no database column takes: a NUL, or a lone surrogate (not UTF-8 at all)."""
    if NUL in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def json_problem(value: Any, max_depth: int) -> str | None:
    """Why the parsed JSON ``value`` can't be used (too deep, unstorable text), walked without recursion."""
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            if unstorable(item):
                return "strings must not contain NUL (\\u0000) or lone surrogates (\\ud800-\\udfff)"
            continue
        if isinstance(item, dict):
            children = [*item.keys(), *item.values()]
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth >= max_depth:
            return f"nested deeper than {max_depth} levels"
        pending.extend((child, depth + 1) for child in children)
    return None


class BoundedRequest(Request):
    """Flask's request whose JSON parsing is bounded and whose failures say "invalid JSON"."""

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        """400 ``invalid JSON`` for a body that doesn't parse (415 stays for a non-JSON type)."""
        if e is None:
            return super().on_json_loading_failed(e)
        raise InvalidJSON(str(e).split(":")[0].lower()) from e

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        """The parsed body, bounded: too deep or holding NUL is refused even for ``silent`` callers,
        and so is a body sent as JSON that doesn't parse (``silent`` only forgives an empty body
        or one that isn't JSON at all, e.g. a form)."""
        try:
            value = super().get_json(force=force, silent=False, cache=cache)
        except UnsupportedMediaType:
            if silent:
                return None
            raise
        except InvalidJSON:
            if silent and not (self.is_json and self.get_data(cache=True).strip()):
                return None
            raise
        except RecursionError:
            raise InvalidJSON(f"nested deeper than {max_depth()} levels") from None
        check_json(value)
        return value


def max_depth() -> int:
    """The deepest nesting a JSON body may have (``JSON_MAX_DEPTH``)."""
    return int(current_app.config.get("JSON_MAX_DEPTH") or 32)


def check_json(value: Any) -> None:
    """Raise :class:`InvalidJSON` when ``value`` nests too deep or holds text no database takes."""
    problem = json_problem(value, max_depth())
    if problem:
        raise InvalidJSON(problem)


def refuse_nul_characters() -> None:
    """400 when the path, the query string or a form field holds a NUL character."""
    in_args = any(NUL in key or NUL in value for key, value in request.args.items(multi=True))
    if NUL in request.path or in_args:
        raise BadRequest("NUL characters are not allowed in URLs")
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        if any(NUL in key or NUL in value for key, value in request.form.items(multi=True)):
            raise BadRequest("NUL characters are not allowed in form fields")


def init_app(app: Flask) -> None:
    """Use the bounded request class and refuse NUL input (``app.web`` answers the errors: JSON to API
    callers, a page to browsers)."""
    app.request_class = BoundedRequest
    app.before_request(refuse_nul_characters)


class IdConverter(IntegerConverter):
    """``<id:name>``: a positive integer that fits an INTEGER id column, else 404."""

    def __init__(self, url_map, *args, **kwargs):
        super().__init__(url_map, min=1, max=MAX_ID)
