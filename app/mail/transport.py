"""Mail transports: SMTP from ``MAIL_URL``, or the development outbox when it is unset.

``MAIL_URL`` forms::

    smtp://host[:port]                        plain SMTP (port 25)
    smtp://user:pass@host:587?starttls=1      STARTTLS, then AUTH (port 587 by default with starttls)
    smtps://user:pass@host[:465]              implicit TLS (port 465)

Query options: ``starttls=1|0``, ``timeout=SECONDS`` (default 30), ``cafile=PATH`` (trust
this CA bundle), ``verify=0`` (don't verify the server certificate; development only).
User name and password are percent-decoded (``%40`` for ``@``).
"""
from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from app.config import ConfigError

DEFAULT_TIMEOUT = 30.0
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


class Transport(Protocol):
    """Something that delivers a composed message and describes what it did (JSON)."""

    def send(self, message: EmailMessage) -> dict: ...


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to reach the SMTP server."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    implicit_tls: bool = False
    starttls: bool = False
    timeout: float = DEFAULT_TIMEOUT
    cafile: str | None = None
    verify: bool = True

    def __repr__(self) -> str:  # never print the password
        scheme = "smtps" if self.implicit_tls else "smtp"
        user = f"{self.username}:***@" if self.username else ""
        return f"SmtpSettings({scheme}://{user}{self.host}:{self.port}, starttls={self.starttls})"


def flag(options: dict[str, list[str]], name: str, default: bool) -> bool:
    """A boolean query option (``1/0``, ``true/false``, ``yes/no``, ``on/off``)."""
    if name not in options:
        return default
    value = options[name][-1].strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise ConfigError(f"MAIL_URL option {name}={value!r} must be 1 or 0")


def default_port(implicit_tls: bool, starttls: bool) -> int:
    """465 for smtps, 587 for STARTTLS submission, 25 otherwise."""
    if implicit_tls:
        return 465
    return 587 if starttls else 25


def parse_mail_url(url: str) -> SmtpSettings:
    """Settings from a ``smtp://`` or ``smtps://`` URL; ``ConfigError`` when malformed."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("smtp", "smtps"):
        raise ConfigError(f"MAIL_URL must start with smtp:// or smtps://, got {parts.scheme or 'no'} scheme")
    if not parts.hostname:
        raise ConfigError("MAIL_URL has no host")
    options = parse_qs(parts.query)
    implicit_tls = parts.scheme == "smtps"
    starttls = flag(options, "starttls", False)
    if implicit_tls and starttls:
        raise ConfigError("MAIL_URL: smtps:// is already TLS; drop starttls=1")
    try:
        port = parts.port or default_port(implicit_tls, starttls)
        timeout = float(options.get("timeout", [DEFAULT_TIMEOUT])[-1])
    except ValueError as exc:
        raise ConfigError(f"MAIL_URL: {exc}") from None
    return SmtpSettings(
        host=parts.hostname, port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        implicit_tls=implicit_tls, starttls=starttls, timeout=timeout,
        cafile=options.get("cafile", [None])[-1], verify=flag(options, "verify", True),
    )


def tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    """A client TLS context: system CAs (or ``cafile``), hostname checked unless ``verify=0``."""
    context = ssl.create_default_context(cafile=settings.cafile)
    if not settings.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class SmtpTransport:
    """Deliver through an SMTP server: implicit TLS or STARTTLS, then AUTH when a user is set."""

    def __init__(self, settings: SmtpSettings):
        self.settings = settings

    def connect(self) -> smtplib.SMTP:
        """An SMTP session, secured and authenticated as configured."""
        s = self.settings
        if s.implicit_tls:
            session: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout,
                                                     context=tls_context(s))
        else:
            session = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        try:
            session.ehlo()
            if s.starttls:
                session.starttls(context=tls_context(s))
                session.ehlo()
            if s.username:
                session.login(s.username, s.password or "")
        except BaseException:
            session.close()
            raise
        return session

    def send(self, message: EmailMessage) -> dict:
        """Send ``message``; raises on any refusal so the job is retried."""
        session = self.connect()
        try:
            refused = session.send_message(message)
        finally:
            try:
                session.quit()
            except smtplib.SMTPException:
                session.close()
        return {"transport": "smtp", "host": self.settings.host, "refused": sorted(refused)}


def transport_for(mail_url: str | None, outbox_dir: str) -> Transport:
    """SMTP when ``mail_url`` is set, else the outbox folder."""
    if mail_url:
        return SmtpTransport(parse_mail_url(mail_url))
    from app.mail.outbox import OutboxTransport

    return OutboxTransport(outbox_dir)
