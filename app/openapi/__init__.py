"""The OpenAPI 3.1 description of the JSON API, generated from the routes.

* :mod:`app.openapi.registry` — ``@documented(...)`` declares a route's request and answers next to it;
* :mod:`app.openapi.spec` — walks ``app.url_map`` into the OpenAPI document;
* :mod:`app.openapi.views` — serves it at ``<dashboard>/api/openapi.json`` and Swagger UI at ``/docs/api``.
"""
from app.openapi.views import init_app

__all__ = ["init_app"]
