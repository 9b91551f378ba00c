"""The job engine (work in progress: the engine API lands with the job-engine issue)."""
from flask import Flask


def init_app(app: Flask) -> None:
    """Bind the job engine to ``app``."""
    app.extensions["jobs"] = None


def transport_error(app: Flask) -> str | None:
    """None when the job transport answers, else the error text."""
    return None
