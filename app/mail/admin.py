"""Admin → Outbox: the development outbox's messages, listed and shown escaped.

Open to active users holding ``Pages.Administration.Outbox`` ("Outbox"). The menu shows
it while the outbox is in use (``MAIL_URL`` unset) or in development. Message names in
URLs are validated by :func:`app.mail.outbox.resolve`: anything else is a 404.
"""
from __future__ import annotations

from typing import Any

from flask import abort, current_app, send_file
from flask_admin import BaseView, expose
from flask_login import current_user

from admin.access import is_active_user, is_signed_in, refuse
from app.mail import outbox
from app.mail.jobs import outbox_dir
from app.permissions import OUTBOX


class OutboxView(BaseView):
    """The outbox folder as two pages: the list and one message."""

    def is_accessible(self) -> bool:
        """True for an active user holding the Outbox permission."""
        return is_active_user(current_user) and current_user.has_permission(OUTBOX)

    def inaccessible_callback(self, name: str, **kwargs: Any):
        """Login redirect (401 for API callers) when anonymous, 403 otherwise."""
        return refuse(is_signed_in(current_user))

    def is_visible(self) -> bool:
        """In the menu while the outbox is the transport, or in development."""
        config = current_app.config
        return not config.get("MAIL_URL") or config.get("APP_ENV") == "development"

    @expose("/")
    def index(self):
        """Every message, newest first."""
        return self.render("mail/outbox_index.html", messages=outbox.list_messages(outbox_dir()),
                           smtp=bool(current_app.config.get("MAIL_URL")))

    @expose("/<filename>")
    def message(self, filename: str):
        """One message: headers, text bodies (escaped, never rendered as HTML) and attachments."""
        shown = outbox.show(outbox_dir(), filename)
        if shown is None:
            abort(404)
        return self.render("mail/outbox_message.html", message=shown)

    @expose("/<filename>/raw")
    def raw(self, filename: str):
        """The ``.eml`` file itself, as a download."""
        path = outbox.resolve(outbox_dir(), filename)
        if path is None:
            abort(404)
        try:
            return send_file(path, mimetype="message/rfc822", as_attachment=True, download_name=filename,
                             max_age=0)
        except FileNotFoundError:
            abort(404)
