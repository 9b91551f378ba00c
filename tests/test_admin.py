"""The admin through its real forms: access rules, the role and user forms, CSRF, menus."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Role, User
from app.permissions import ADMIN_ROLE, HANGFIRE, HANGFIRE_READ_ONLY, ROLES, USERS
from tests.helpers.accounts import make_role, permission_id, role_id_by_name, role_state, user_id, user_state
from tests.helpers.web import PASSWORD, assert_login_redirect, csrf_for, csrf_token, sign_in, submit


# --- helpers -----------------------------------------------------------------------------------

def is_signed_in(client) -> bool:
    """True when ``client`` holds a session the app accepts (Reports is open to every signed-in user)."""
    return client.get("/reports").status_code == 200


def delete_row(client, view: str, row_id: int, **kwargs):
    """POST the list page's delete form for ``row_id`` of ``view`` (role or user)."""
    data = {"id": str(row_id), "csrf_token": csrf_for(client)}
    return client.post(f"/admin/{view}/delete/", data=data, **kwargs)


def user_form(username: str, email: str, *, password: str = "", active: bool = True, roles=()) -> dict:
    """Form data for the user create/edit form (without the CSRF token)."""
    data = {"username": username, "email": email, "new_password": password, "roles": [str(r) for r in roles]}
    if active:
        data["active"] = "y"
    return data


# --- the seed flow: grant "Hangfire Dashboard" to a role through the form ----------------------

def test_admin_grants_dashboard_through_role_form(app, make_user, admin_client):
    role_id = make_role(app, "Operators", description="Run the jobs")
    make_user("olivia", roles=["Operators"])
    make_user("nina")
    hangfire_id = permission_id(app, HANGFIRE)

    page = admin_client.get(f"/admin/role/edit/?id={role_id}")
    assert page.status_code == 200
    html = page.get_data(True)
    assert re.search(rf'<input[^>]*id="permissions-{hangfire_id}"[^>]*value="{hangfire_id}"', html)
    assert f'<label class="form-check-label" id="permissions-{hangfire_id}-label" ' \
           f'for="permissions-{hangfire_id}">Hangfire Dashboard</label>' in html
    assert ">Background jobs</legend>" in html and ">Administration</legend>" in html

    saved = admin_client.post(f"/admin/role/edit/?id={role_id}", data={
        "name": "Operators", "description": "Run the jobs", "permissions": [str(hangfire_id)],
        "csrf_token": csrf_token(html),
    })
    assert saved.status_code == 302
    assert role_state(app, role_id) == ("Operators", {HANGFIRE})

    operator = sign_in(app, "olivia")
    dashboard = operator.get("/hangfire")
    assert dashboard.status_code == 200
    assert "Hangfire Dashboard" in dashboard.get_data(True)
    assert sign_in(app, "nina").get("/hangfire").status_code == 403
    assert app.test_client().get("/hangfire").headers["Location"] == "/login?next=%2Fhangfire"


def test_role_form_offers_dashboard_access_as_one_choice(app, admin_client):
    """"Hangfire Dashboard" and "View only" stand side by side as one exclusive choice, each
    label unique on the page: never a box under an unticked parent."""
    html = admin_client.get("/admin/role/new/").get_data(True)
    full_id, view_id = permission_id(app, HANGFIRE), permission_id(app, HANGFIRE_READ_ONLY)
    label = f'for="permissions-{view_id}" title="Hangfire Dashboard (view only)">View only</label>'
    assert label in html
    choice = re.search(r'<div class="exclusive-choice[^"]*" role="group" data-choice="([^"]+)">', html)
    assert choice, "no exclusive choice on the form"
    group = choice.group(1)
    for pk in (full_id, view_id):
        assert re.search(rf'<input[^>]*id="permissions-{pk}"[^>]*data-exclusive="{group}"', html)
    labels = re.findall(r'<label class="form-check-label"[^>]*>([^<]*)</label>', html)
    assert labels[:2] == ["Hangfire Dashboard", "View only"]
    assert {"Roles", "Users", "Outbox", "All reports"} <= set(labels)
    assert len(labels) == len(set(labels))  # every label names one checkbox


def test_role_form_refuses_both_dashboard_choices(app, admin_client):
    ids = [str(permission_id(app, HANGFIRE)), str(permission_id(app, HANGFIRE_READ_ONLY))]
    response = submit(admin_client, "/admin/role/new/", {"name": "Both", "permissions": ids})
    assert response.status_code == 200
    assert "Choose one of “Hangfire Dashboard” or “Hangfire Dashboard (view only)”, not both." in \
        response.get_data(True)
    with app.app_context():
        assert Role.by_name("Both") is None


def test_role_create_and_list(app, admin_client):
    ids = [permission_id(app, HANGFIRE_READ_ONLY), permission_id(app, USERS)]
    response = submit(admin_client, "/admin/role/new/", {
        "name": "Viewers", "description": "Look only", "permissions": [str(i) for i in ids]})
    assert response.status_code == 302
    listing = admin_client.get("/admin/role/").get_data(True)
    assert "Viewers" in listing and "Look only" in listing
    assert "Users, Hangfire Dashboard (view only)" in listing or \
           "Hangfire Dashboard (view only), Users" in listing


def test_role_name_must_be_unique_ignoring_case(app, admin_client):
    make_role(app, "Operators")
    response = submit(admin_client, "/admin/role/new/", {"name": "operators"})
    assert response.status_code == 200
    assert "A role with this name already exists." in response.get_data(True)
    with app.app_context():
        assert Role.by_name("operators") is None


def test_admin_role_cannot_be_renamed(app, admin_client):
    admin_id = role_id_by_name(app, ADMIN_ROLE)
    before = role_state(app, admin_id)
    path = f"/admin/role/edit/?id={admin_id}"
    assert re.search(r'<input[^>]*id="name"[^>]*readonly', admin_client.get(path).get_data(True))
    roles_id = str(permission_id(app, ROLES))
    response = submit(admin_client, path, {"name": "Superusers", "permissions": [roles_id]})
    assert response.status_code == 200
    assert "The Admin role can&#39;t be renamed." in response.get_data(True)
    assert role_state(app, admin_id) == before


def test_admin_role_cannot_be_deleted(app, admin_client):
    admin_id = role_id_by_name(app, ADMIN_ROLE)
    response = delete_row(admin_client, "role", admin_id, follow_redirects=True)
    assert "The Admin role can&#39;t be deleted." in response.get_data(True)
    assert role_state(app, admin_id) is not None


def test_other_roles_can_be_deleted(app, admin_client):
    role_id = make_role(app, "Temporary")
    assert delete_row(admin_client, "role", role_id).status_code == 302
    assert role_state(app, role_id) is None


# --- access rules of every admin view ---------------------------------------------------------

VIEWS = [("role", ROLES), ("user", USERS)]


@pytest.fixture
def targets(app, make_user):
    """A deletable row per view: ``{"role": id, "user": id}``."""
    return {"role": make_role(app, "Temporary"), "user": make_user("temporary")}


def get_page(client, view: str, action: str, target: int):
    """GET the ``action`` page (list, create, edit) of ``view``."""
    path = {"list": f"/admin/{view}/", "create": f"/admin/{view}/new/",
            "edit": f"/admin/{view}/edit/?id={target}"}[action]
    return path, client.get(path)


def still_exists(app, view: str, target: int) -> bool:
    """True when the target row of ``view`` is still in the database."""
    with app.app_context():
        return db.session.get(Role if view == "role" else User, target) is not None


@pytest.mark.parametrize("view,permission", VIEWS)
@pytest.mark.parametrize("action", ["list", "create", "edit"])
def test_anonymous_is_sent_to_login(app, client, targets, view, permission, action):
    path, response = get_page(client, view, action, targets[view])
    assert_login_redirect(response, path)


@pytest.mark.parametrize("view,permission", VIEWS)
@pytest.mark.parametrize("action", ["list", "create", "edit"])
def test_user_without_permission_gets_403(app, make_user, targets, view, permission, action):
    other = HANGFIRE if permission == ROLES else ROLES
    make_user("mallory", permissions=[other, HANGFIRE_READ_ONLY])
    _, response = get_page(sign_in(app, "mallory"), view, action, targets[view])
    assert response.status_code == 403
    assert "Traceback" not in response.get_data(True)


@pytest.mark.parametrize("view,permission", VIEWS)
@pytest.mark.parametrize("action", ["list", "create", "edit"])
def test_user_with_permission_opens_page(app, make_user, targets, view, permission, action):
    make_user("paula", permissions=[permission])
    _, response = get_page(sign_in(app, "paula"), view, action, targets[view])
    assert response.status_code == 200
    assert 'name="csrf_token"' in response.get_data(True)


@pytest.mark.parametrize("view,permission", VIEWS)
def test_delete_access(app, make_user, client, targets, view, permission):
    target = targets[view]
    assert_login_redirect(delete_row(client, view, target), f"/admin/{view}/delete/")

    make_user("mallory", permissions=[USERS if permission == ROLES else ROLES])
    assert delete_row(sign_in(app, "mallory"), view, target).status_code == 403
    assert still_exists(app, view, target)

    make_user("paula", permissions=[permission])
    assert delete_row(sign_in(app, "paula"), view, target).status_code == 302
    assert not still_exists(app, view, target)


def test_api_caller_gets_json_errors(app, make_user):
    anonymous = app.test_client().get("/admin/role/", headers={"Accept": "application/json"})
    assert anonymous.status_code == 401 and anonymous.is_json
    make_user("mallory", permissions=[USERS])
    refused = sign_in(app, "mallory").get("/admin/role/", headers={"Accept": "application/json"})
    assert refused.status_code == 403 and refused.get_json() == {"error": "permission denied"}


def test_admin_index_requires_sign_in(app, client, make_user):
    assert_login_redirect(client.get("/admin/"), "/admin/")
    make_user("nobody")
    page = sign_in(app, "nobody").get("/admin/")  # no admin page to open: Reports is where they work
    assert page.status_code == 302 and page.headers["Location"] == "/reports"
    make_user("ursula", permissions=[USERS])
    page = sign_in(app, "ursula").get("/admin/")
    assert page.status_code == 200 and "Signed in as <strong>ursula</strong>" in page.get_data(True)


def test_login_next_is_kept_with_query_string(client):
    assert_login_redirect(client.get("/admin/user/?search=ali"), "/admin/user/?search=ali")


# --- menus ------------------------------------------------------------------------------------

def menu(client) -> dict[str, str]:
    """``{text: href}`` of every entry of the app's navigation bar as ``client`` sees it (a category: "")."""
    html = client.get("/admin/").get_data(True)
    nav = html[html.index('<nav class="app-nav"'):html.index("</nav>")]
    links = re.findall(r'<a href="([^"]*)"[^>]*>\s*(.*?)\s*</a>', nav, re.S)
    categories = re.findall(r"<summary>\s*(.*?)\s*</summary>", nav, re.S)
    return {text: href for href, text in links} | {name: "" for name in categories}


def test_menu_hides_views_the_user_cannot_open(app, make_user):
    make_user("ursula", permissions=[USERS])
    links = menu(sign_in(app, "ursula"))
    assert links["Configuration"] == ""
    assert links["Users"] == "/admin/user/"
    assert "Roles" not in links and "Dashboard" not in links


def test_menu_shows_everything_to_admins(admin_client):
    links = menu(admin_client)
    assert links["Roles"] == "/admin/role/"
    assert links["Users"] == "/admin/user/"
    assert links["Dashboard"] == "/hangfire"


def test_menu_hides_configuration_without_admin_permissions(app, make_user):
    make_user("olga", permissions=[HANGFIRE_READ_ONLY])
    links = menu(sign_in(app, "olga"))
    assert links["Dashboard"] == "/hangfire"
    assert not {"Configuration", "Roles", "Users"} & set(links)


# --- CSRF -------------------------------------------------------------------------------------

def test_post_without_csrf_token_is_refused(app, admin_client):
    response = admin_client.post("/admin/role/new/", data={"name": "Sneaky"})
    assert response.status_code == 400
    with app.app_context():
        assert Role.by_name("Sneaky") is None
    target = user_id(app, "root")
    assert admin_client.post("/admin/user/delete/", data={"id": str(target)}).status_code == 400
    assert user_state(app, "root") is not None


def test_post_with_forged_csrf_token_is_refused(app, admin_client):
    response = admin_client.post("/admin/role/new/", data={"name": "Sneaky", "csrf_token": "forged"})
    assert response.status_code == 400
    with app.app_context():
        assert Role.by_name("Sneaky") is None


# --- the user form ----------------------------------------------------------------------------

def test_create_user_with_password_can_sign_in(app, admin_client):
    operators = make_role(app, "Operators", [HANGFIRE])
    form = admin_client.get("/admin/user/new/").get_data(True)
    assert 'type="password"' in form and ">Operators</label>" in form
    response = submit(admin_client, "/admin/user/new/",
                      user_form("carol", "carol@example.com", password="a new secret 1", roles=[operators]))
    assert response.status_code == 302
    carol = user_state(app, "carol")
    assert carol.email == "carol@example.com" and carol.active and carol.check_password("a new secret 1")
    client = sign_in(app, "carol", "a new secret 1")
    assert is_signed_in(client)
    assert client.get("/hangfire").status_code == 200


def test_create_user_requires_password(app, admin_client):
    response = submit(admin_client, "/admin/user/new/", user_form("carol", "carol@example.com"))
    assert response.status_code == 200
    assert "This field is required." in response.get_data(True)
    assert user_state(app, "carol") is None


def test_edit_with_blank_password_keeps_it(app, admin_client, make_user):
    target = make_user("dave")
    form = user_form("dave", "dave@new.example.com")
    response = submit(admin_client, f"/admin/user/edit/?id={target}", form)
    assert response.status_code == 302
    dave = user_state(app, "dave")
    assert dave.email == "dave@new.example.com" and dave.check_password(PASSWORD)
    assert is_signed_in(sign_in(app, "dave"))


def test_edit_sets_new_password(app, admin_client, make_user):
    target = make_user("dave")
    submit(admin_client, f"/admin/user/edit/?id={target}",
           user_form("dave", "dave@example.com", password="another secret"))
    assert user_state(app, "dave").check_password("another secret")
    assert not is_signed_in(sign_in(app, "dave"))
    assert is_signed_in(sign_in(app, "dave", "another secret"))


def test_password_hash_is_never_shown(app, admin_client, make_user):
    target = make_user("dave")
    password_hash = user_state(app, "dave").password_hash
    for path in ("/admin/user/", f"/admin/user/edit/?id={target}"):
        html = admin_client.get(path).get_data(True)
        assert password_hash not in html and "password_hash" not in html


def test_deactivated_user_cannot_sign_in(app, admin_client, make_user):
    target = make_user("erin")
    response = submit(admin_client, f"/admin/user/edit/?id={target}",
                      user_form("erin", "erin@example.com", active=False))
    assert response.status_code == 302
    assert user_state(app, "erin").active is False
    assert not is_signed_in(sign_in(app, "erin"))


def test_cannot_deactivate_yourself(app, admin_client):
    me = user_id(app, "root")
    response = submit(admin_client, f"/admin/user/edit/?id={me}", user_form(
        "root", "root@example.com", active=False, roles=[role_id_by_name(app, ADMIN_ROLE)]))
    assert response.status_code == 200
    assert "You can&#39;t deactivate your own account." in response.get_data(True)
    assert user_state(app, "root").active is True
    assert is_signed_in(admin_client)


def test_cannot_delete_yourself(app, admin_client):
    response = delete_row(admin_client, "user", user_id(app, "root"), follow_redirects=True)
    assert "You can&#39;t delete your own account." in response.get_data(True)
    assert user_state(app, "root") is not None


@pytest.mark.parametrize("username,email,message", [
    ("ROOT", "other@example.com", "This username is already taken."),
    ("other", "Root@Example.com", "Another user already has this email address."),
    ("other", "not-an-email", "Enter a valid email address."),
    ("two words", "other@example.com", "A username can&#39;t contain spaces or &#39;@&#39;."),
])
def test_bad_user_fields_rerender_with_message(app, admin_client, username, email, message):
    form = user_form(username, email, password="long enough secret")
    response = submit(admin_client, "/admin/user/new/", form)
    assert response.status_code == 200
    html = response.get_data(True)
    assert message in html
    assert f'value="{email}"' in html
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(User)) == 1


def test_duplicate_username_on_edit(app, admin_client, make_user):
    target = make_user("dave")
    response = submit(admin_client, f"/admin/user/edit/?id={target}", user_form("root", "dave@example.com"))
    assert response.status_code == 200
    assert "This username is already taken." in response.get_data(True)
    assert user_state(app, "dave") is not None


def test_user_list_columns_and_search(app, admin_client, make_user):
    make_user("alice", roles=[ADMIN_ROLE])
    make_user("bob")
    listing = admin_client.get("/admin/user/").get_data(True)
    for header in ("Username", "Email", "Active", "Roles", "Created", "Last login"):
        assert header in listing
    assert "alice@example.com" in listing and "UTC" in listing
    found = admin_client.get("/admin/user/?search=alice").get_data(True)
    assert "alice@example.com" in found and "bob@example.com" not in found
    by_email = admin_client.get("/admin/user/?search=bob%40example").get_data(True)
    assert "bob@example.com" in by_email and "alice@example.com" not in by_email
