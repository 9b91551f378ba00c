"""CLI groups: users, roles, permissions."""
from flask import Flask


def init_app(app: Flask) -> None:
    pass
