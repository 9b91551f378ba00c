"""Flask-Admin setup. Placeholder: being written."""
from flask import Flask
from flask_admin import Admin
from flask_admin.theme import Bootstrap4Theme


def init_admin(app: Flask) -> Admin:
    admin = Admin(app, name="Jobs", theme=Bootstrap4Theme())
    return admin
