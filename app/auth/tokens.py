"""Access tokens for API clients: HS256 JWTs signed with the application's secret."""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timezone

import jwt
from flask import Request, current_app

from app.models import User

ALGORITHM = "HS256"
TOKEN_TYPE = "access"
MIN_KEY_BYTES = 32  # RFC 7518 §3.2: an HS256 key must be at least as long as the hash
KEY_DERIVATION_LABEL = b"app.auth.tokens/hs256"


class TokenError(Exception):
    """A bearer token was refused; ``reason`` is safe to show to the client."""

    reason = "invalid token"


class ExpiredToken(TokenError):
    """The token was genuine but its ``exp`` has passed."""

    reason = "token expired"


def signing_key(secret: str | bytes) -> bytes:
    """The HS256 key: ``secret`` itself when long enough, else a 32-byte HMAC-SHA256 derivation.

    Production refuses secrets under 32 bytes (``app.config.check``); development and tests
    may use shorter ones, which PyJWT would warn about.
    """
    raw = secret.encode() if isinstance(secret, str) else secret
    if len(raw) >= MIN_KEY_BYTES:
        return raw
    return hmac.new(raw, KEY_DERIVATION_LABEL, hashlib.sha256).digest()


def current_signing_key() -> bytes:
    """The signing key of the current application."""
    return signing_key(current_app.config["SECRET_KEY"])


@dataclass(frozen=True)
class TokenClaims:
    """What a verified token says: whose it is, and the session stamp it was issued under."""

    user_id: int
    stamp: str
    tenant: str | None = None

    def matches(self, user: User) -> bool:
        """True while ``user``'s sessions haven't been ended since the token was issued, and the
        token names the user's tenant."""
        return (hmac.compare_digest(self.stamp.encode(), (user.session_stamp or "").encode())
                and self.tenant == user.tenant_name)


def issue_token(user: User) -> tuple[str, int]:
    """A signed access token for ``user`` and its lifetime in seconds (``JWT_EXPIRES``).

    The token carries the user's tenant (``tnt``, null for the host) and session stamp (``sst``):
    ending the user's sessions
    (password change, deactivation, "Sign out everywhere") changes the stamp and so
    ends the token too.
    """
    lifetime = current_app.config["JWT_EXPIRES"]
    issued_at = datetime.now(timezone.utc)
    claims = {
        "sub": str(user.id),
        "iat": issued_at,
        "exp": issued_at + lifetime,
        "type": TOKEN_TYPE,
        "sst": user.session_stamp,
        "tnt": user.tenant_name,  # the tenant the token acts in (null: the host)
    }
    return jwt.encode(claims, current_signing_key(), algorithm=ALGORITHM), int(lifetime.total_seconds())


def verify_token(token: str) -> int:
    """The user id an access token names; raises ``TokenError`` (or ``ExpiredToken``)."""
    return decode_token(token).user_id


def decode_token(token: str) -> TokenClaims:
    """The verified claims of an access token; raises ``TokenError`` (or ``ExpiredToken``)."""
    try:
        claims = jwt.decode(
            token,
            current_signing_key(),
            algorithms=[ALGORITHM],
            options={"require": ["exp", "sub", "iat", "sst"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise ExpiredToken() from exc
    except jwt.InvalidTokenError as exc:
        raise TokenError() from exc
    tenant = claims.get("tnt")
    if claims.get("type") != TOKEN_TYPE or not isinstance(claims["sst"], str) \
            or not isinstance(tenant, (str, type(None))):
        raise TokenError()
    try:
        return TokenClaims(user_id=int(claims["sub"]), stamp=claims["sst"], tenant=tenant)
    except ValueError as exc:
        raise TokenError() from exc


def bearer_token(req: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header ("" when empty), None without one."""
    scheme, _, token = req.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip()
