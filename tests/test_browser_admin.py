"""In Chromium: an admin grants "Hangfire Dashboard" to a role through the role form."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from app.extensions import db
from app.models import Role
from app.permissions import ADMIN_ROLE, HANGFIRE
from tests.browser import screenshot, sign_in


pytestmark = pytest.mark.browser


def create_role(app, name: str) -> None:
    """An empty role called ``name``."""
    with app.app_context():
        db.session.add(Role(name=name, description="Runs the jobs"))
        db.session.commit()


def role_permissions(app, name: str) -> set[str]:
    """Names of the permissions the role called ``name`` holds."""
    with app.app_context():
        return {p.name for p in Role.by_name(name).permissions}


def test_admin_grants_dashboard_to_role(app, make_user, new_page):
    create_role(app, "Operators")
    make_user("root", roles=[ADMIN_ROLE])
    make_user("olivia", roles=["Operators"])
    make_user("nina")

    admin = new_page()
    sign_in(admin, "root")
    menu = admin.get_by_role("navigation", name="Main")
    menu.get_by_text("Configuration").click()
    menu.get_by_role("link", name="Roles").click()
    expect(admin).to_have_url("/admin/role/")
    admin.get_by_role("row").filter(has_text="Operators").get_by_title("Edit Record").click()
    expect(admin.get_by_label("Name")).to_have_value("Operators")
    admin.get_by_label("Hangfire Dashboard").check()
    screenshot(admin, "role-form")
    admin.get_by_role("button", name="Save").click()
    expect(admin.get_by_text("Record was successfully saved.")).to_be_visible()
    expect(admin.get_by_role("row").filter(has_text="Operators")).to_contain_text("Hangfire Dashboard")
    assert role_permissions(app, "Operators") == {HANGFIRE}

    operator = new_page()
    sign_in(operator, "olivia")
    response = operator.goto("/hangfire")
    assert response.status == 200
    expect(operator.get_by_role("heading", name="Hangfire Dashboard")).to_be_visible()
    expect(operator.get_by_test_id("count-failed")).to_contain_text("0")
    screenshot(operator, "hangfire")

    outsider = new_page()
    sign_in(outsider, "nina")
    assert outsider.goto("/hangfire").status == 403
