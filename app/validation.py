"""The rules for account fields, shared by the admin's forms and the CLI (one validator each).

Each ``*_problem`` function returns a message for the person, or None when the value is fine.
"""
from __future__ import annotations

import re

from email_validator import EmailNotValidError, validate_email

USERNAME_MAX_LENGTH = 64
EMAIL_MAX_LENGTH = 255
PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 256
USERNAME_RE = re.compile(r"^[^\s@\x00-\x1f\x7f]+$")


def email_problem(address: str | None) -> str | None:
    """Why ``address`` isn't a usable email address (syntax and domain rules, no DNS lookup)."""
    if not address:
        return "Enter an email address."
    if len(address) > EMAIL_MAX_LENGTH:
        return f"An email address has at most {EMAIL_MAX_LENGTH} characters."
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return "Enter a valid email address."
    return None


def username_problem(username: str | None) -> str | None:
    """Why ``username`` can't name an account (empty, too long, spaces, '@' or control characters)."""
    if not username:
        return "Enter a username."
    if len(username) > USERNAME_MAX_LENGTH:
        return f"A username has at most {USERNAME_MAX_LENGTH} characters."
    if not USERNAME_RE.match(username):
        return "A username can't contain spaces or '@'."
    return None


def password_problem(password: str | None) -> str | None:
    """Why ``password`` is too short or too long."""
    if not password or len(password) < PASSWORD_MIN_LENGTH:
        return f"A password has at least {PASSWORD_MIN_LENGTH} characters."
    if len(password) > PASSWORD_MAX_LENGTH:
        return f"A password has at most {PASSWORD_MAX_LENGTH} characters."
    return None


TENANT_NAME_MAX_LENGTH = 64
TENANT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def tenant_name_problem(name: str | None) -> str | None:
    """Why ``name`` can't name a tenant (empty, too long, or not letters, digits, ``.``, ``_``, ``-``)."""
    if not name:
        return "Enter a tenant name."
    if len(name) > TENANT_NAME_MAX_LENGTH:
        return f"A tenant name has at most {TENANT_NAME_MAX_LENGTH} characters."
    if not TENANT_NAME_RE.match(name):
        return "A tenant name starts with a letter or digit and holds only letters, digits, '.', '_' and '-'."
    return None
