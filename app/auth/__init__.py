"""Sign-in (session and bearer token). Placeholder: being written."""
from flask import Blueprint, Flask

bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login():
    return "login"


@bp.route("/logout", methods=["POST"])
def logout():
    return "logout"


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
