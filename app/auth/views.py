"""Sign-in and sign-out pages."""
from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user
from werkzeug import Response

from app.auth.blueprint import bp
from app.auth.credentials import SignInRefused, SignInThrottled, authenticate
from app.auth.forms import LoginForm
from app.auth.responses import retry_after_headers
from app.auth.signins import end_session, start_session
from app.auth.tokens import bearer_token
from app.extensions import db
from app.web import safe_next_url

#: the browser remembers the tenant it last signed in to (a convenience, not a credential)
TENANT_COOKIE = "tenant"
TENANT_COOKIE_DAYS = 365


def next_url() -> str:
    """Where to go after signing in: the ``next`` argument when it stays on site, else the landing page."""
    return safe_next_url(request.args.get("next"))


def render_login(form: LoginForm, error: str | None = None, status: int = 200, headers=None):
    """The sign-in page, with an optional error message."""
    return render_template("auth/login.html", form=form, error=error), status, headers or {}


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Show the sign-in form; on valid credentials sign in and go to ``next``."""
    if request.method == "GET" and current_user.is_authenticated:
        return redirect(next_url())
    form = LoginForm()
    if request.method == "GET" and not form.tenant.data:
        form.tenant.data = request.cookies.get(TENANT_COOKIE, "")[:64]
    if not form.validate_on_submit():
        return render_login(form)
    try:
        user = authenticate(form.username.data, form.password.data, request.remote_addr, form.tenant.data)
    except SignInThrottled as refused:
        return render_login(form, refused.message, 429, retry_after_headers(refused.retry_after_seconds))
    except SignInRefused as refused:
        return render_login(form, refused.message)
    session.clear()  # nothing from before the sign-in carries over (session fixation)
    start_session(user, remember=form.remember.data)
    db.session.commit()
    login_user(user, remember=form.remember.data)
    session["tenant"] = user.tenant_name
    return remember_tenant(redirect(next_url()), user.tenant_name)


def remember_tenant(response: Response, tenant: str | None) -> Response:
    """Keep the tenant signed in to for this browser's next visit to the sign-in page (forget the host).

    Bearer requests set no cookie at all (their sessions aren't saved either).
    """
    if bearer_token(request) is not None:
        return response
    if tenant:
        response.set_cookie(TENANT_COOKIE, tenant, max_age=TENANT_COOKIE_DAYS * 86400, httponly=True,
                            samesite="Lax", secure=current_app.config.get("SESSION_COOKIE_SECURE", False))
    elif TENANT_COOKIE in request.cookies:
        response.delete_cookie(TENANT_COOKIE)
    return response


@bp.route("/logout", methods=["POST"])
@login_required
def logout() -> Response:
    """Sign out (POST with a CSRF token only): the session ends on the server too."""
    end_session(session.get("_user_id"))
    db.session.commit()
    logout_user()
    flash("You have been signed out.", "info")
    return redirect(url_for("auth.login"))
