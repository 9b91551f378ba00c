"""Where report files live: ``instance/reports/<user_id>/<token>.<format>``, outside ``static/``.

Paths are built only from a report's integer owner id, its 32-hex-digit token and a
known format, then checked to resolve inside the reports folder; nothing a client
sends becomes part of a path. Files are written to a ``.part`` sibling and renamed into
place, so a build killed halfway never leaves a truncated report behind.
"""
from __future__ import annotations

import os
import re
import time
import uuid

from flask import current_app

FORMATS = {
    "csv": ("CSV", "text/csv"),
    "xlsx": ("Excel (XLSX)", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
}
TOKEN_RE = re.compile(r"^[0-9a-f]{32}$")
FILE_RE = re.compile(r"^(?P<token>[0-9a-f]{32})\.(?P<format>[a-z]+)$")
PART_SUFFIX = ".part"


class UnsafePath(ValueError):
    """A path that would leave the reports folder, or a malformed token or format."""


def root() -> str:
    """The reports folder of the current app."""
    return os.path.join(current_app.instance_path, "reports")


def inside(base: str, path: str) -> str:
    """``path`` resolved, if it stays strictly inside ``base``; UnsafePath otherwise."""
    base, resolved = os.path.realpath(base), os.path.realpath(path)
    if resolved == base or os.path.commonpath([base, resolved]) != base:
        raise UnsafePath(f"{path!r} is outside {base!r}")
    return resolved


def relative_path(user_id: int, token: str, fmt: str) -> str:
    """``reports/<user_id>/<token>.<format>``, relative to the instance folder."""
    if not isinstance(user_id, int) or isinstance(user_id, bool) or user_id < 1:
        raise UnsafePath(f"bad owner id {user_id!r}")
    if not TOKEN_RE.match(token or "") or fmt not in FORMATS:
        raise UnsafePath(f"bad token or format {token!r}.{fmt!r}")
    return os.path.join("reports", str(user_id), f"{token}.{fmt}")


def file_path(user_id: int, token: str, fmt: str) -> str:
    """The absolute path of a report file (checked to stay in the reports folder)."""
    path = os.path.join(current_app.instance_path, relative_path(user_id, token, fmt))
    return inside(root(), path)


def partial_path(final: str) -> str:
    """A unique temporary sibling of ``final`` to write into before the rename."""
    return f"{final}.{os.getpid()}-{uuid.uuid4().hex[:8]}{PART_SUFFIX}"


def publish(partial: str, final: str) -> int:
    """Move a finished ``partial`` file into place atomically; returns its size in bytes."""
    os.replace(partial, final)
    return os.path.getsize(final)


def discard(path: str) -> bool:
    """Delete ``path`` if it exists; True when something was deleted."""
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def stored_files() -> list[tuple[int, str, str, float]]:
    """Every file under the reports folder as ``(user_id, name, path, mtime)``."""
    found = []
    base = root()
    if not os.path.isdir(base):
        return found
    for owner in os.listdir(base):
        folder = os.path.join(base, owner)
        if not owner.isdigit() or not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                found.append((int(owner), name, path, os.path.getmtime(path)))
    return found


def age_seconds(mtime: float) -> float:
    """How long ago ``mtime`` was."""
    return time.time() - mtime
