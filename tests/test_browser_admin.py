"""In Chromium: an admin grants "Hangfire Dashboard" to a role through the role form; the dashboard
choice is exclusive; list actions work under the Content-Security-Policy."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from app.extensions import db
from app.models import Role, User
from app.permissions import ADMIN_ROLE, HANGFIRE, HANGFIRE_READ_ONLY
from tests.browser import loaded, screenshot, sign_in


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


def csp_violations(page) -> list[str]:
    """Console messages of the page that report a Content-Security-Policy violation (collected live)."""
    seen: list[str] = []
    page.on("console", lambda message: seen.append(f"{message.text} at {message.location}")
            if "Content Security Policy" in message.text else None)
    return seen


def test_dashboard_access_is_one_choice_on_the_role_form(app, make_user, new_page):
    """Ticking "View only" unticks "Hangfire Dashboard" and the other way round; saved as one choice."""
    create_role(app, "Viewers")
    make_user("root", roles=[ADMIN_ROLE])
    admin = new_page()
    violations = csp_violations(admin)
    sign_in(admin, "root")
    admin.goto("/admin/role/")
    admin.get_by_role("row").filter(has_text="Viewers").get_by_title("Edit Record").click()
    admin.wait_for_url("**/admin/role/edit/**")
    admin.wait_for_load_state("load")  # the form's script ties the two boxes together once it has run
    full, view_only = admin.get_by_label("Hangfire Dashboard", exact=True), admin.get_by_label("View only")
    full.check()
    view_only.check()
    expect(full).not_to_be_checked()
    full.check()
    expect(view_only).not_to_be_checked()
    view_only.check()
    screenshot(admin, "role-form-dashboard-choice")
    admin.get_by_role("button", name="Save").click()
    expect(admin.get_by_text("Record was successfully saved.")).to_be_visible()
    assert role_permissions(app, "Viewers") == {HANGFIRE_READ_ONLY}
    assert violations == [], "\n".join(violations)


def test_list_actions_work_without_inline_script(app, make_user, new_page):
    """Row delete and "With selected → Delete" ask first and work under the Content-Security-Policy."""
    make_user("root", roles=[ADMIN_ROLE])
    for name in ("temp1", "temp2", "temp3"):
        make_user(name)
    admin = new_page()
    violations = csp_violations(admin)
    sign_in(admin, "root")
    admin.goto("/admin/user/")
    admin.once("dialog", lambda dialog: dialog.dismiss())
    admin.get_by_role("row").filter(has_text="temp1").get_by_title("Delete Record").click()
    expect(admin.get_by_role("row").filter(has_text="temp1")).to_be_visible()
    admin.once("dialog", lambda dialog: dialog.accept())
    admin.get_by_role("row").filter(has_text="temp1").get_by_title("Delete Record").click()
    expect(admin.get_by_text("Record was successfully deleted.")).to_be_visible()
    loaded(admin)  # the "With selected" menu opens through the list page's script
    for name in ("temp2", "temp3"):
        admin.get_by_role("row").filter(has_text=name).locator("input.action-checkbox").check()
    admin.get_by_role("button", name="With selected").click()
    admin.once("dialog", lambda dialog: dialog.accept())
    admin.get_by_role("link", name="Delete", exact=True).click()
    expect(admin.get_by_text("2 records were successfully deleted.")).to_be_visible()
    with app.app_context():
        assert {u.username for u in db.session.scalars(db.select(User))} == {"root"}
    assert violations == [], "\n".join(violations)
