"""The ``auth`` blueprint: sign-in pages and the token API register their routes on it."""
from flask import Blueprint

bp = Blueprint("auth", __name__)
