"""A cookie session interface that leaves bearer-token requests stateless."""
from __future__ import annotations

from flask import Flask, Request, Response
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

from app.auth.tokens import bearer_token


class BearerSession(SecureCookieSession):
    """The session of a bearer-token request: starts empty, is never saved."""


class BearerAwareSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, except that bearer requests neither read nor set cookies.

    A request carrying ``Authorization: Bearer`` is authenticated by its token alone: any
    session cookie it also sends is ignored, and nothing it does to the session is sent back.
    """

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        """An empty ``BearerSession`` for bearer requests, else the cookie's session."""
        if bearer_token(request) is not None:
            return BearerSession()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SecureCookieSession, response: Response) -> None:
        """Write the session cookie, except for bearer requests (which vary on Authorization)."""
        if isinstance(session, BearerSession):
            response.vary.add("Authorization")
            return
        super().save_session(app, session, response)
