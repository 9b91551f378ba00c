"""Nobody grants what they don't hold: every role/user form and list action, tried as an escalating editor.

Each refusal must re-render (or come back) with a message and save nothing; each allowed change
must really happen, so that removing a rule turns its test red.
"""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Permission, Role
from app.permissions import ADMIN_ROLE, HANGFIRE, HANGFIRE_READ_ONLY, REGISTRY, ROLES, USERS
from tests.helpers.accounts import make_role, permission_id, role_id_by_name, role_state, user_id, user_state
from tests.helpers.web import PASSWORD, csrf_for, post_form, sign_in, submit


# --- helpers -----------------------------------------------------------------------------------

def user_form(username: str, *, active: bool = True, roles=(), password: str = "") -> dict:
    """User edit form data (without the CSRF token); email ``<username>@example.com``."""
    data = {"username": username, "email": f"{username}@example.com", "new_password": password,
            "roles": [str(r) for r in roles]}
    if active:
        data["active"] = "y"
    return data


def role_form(name: str, permissions=(), description: str = "") -> dict:
    """Role form data for ``permissions`` (names)."""
    return {"name": name, "description": description, "permissions": [str(p) for p in permissions]}


def edit_user(app, client, username: str, **form):
    """Submit the edit form of ``username`` (roles given by name)."""
    roles = [role_id_by_name(app, name) for name in form.pop("roles", ())]
    path = f"/admin/user/edit/?id={user_id(app, username)}"
    return submit(client, path, user_form(username, roles=roles, **form))


def permission_ids(app, *names: str) -> list[int]:
    """Ids of the permissions called ``names``."""
    return [permission_id(app, name) for name in names]


def roles_of(app, username: str) -> set[str]:
    """Names of the roles ``username`` holds."""
    with app.app_context():
        from app.models import User

        user = db.session.scalar(select(User).where(User.username == username))
        return {role.name for role in user.roles}


def bulk_delete(client, view: str, ids) -> object:
    """The list page's "With selected → Delete" form."""
    data = {"action": "delete", "rowid": [str(i) for i in ids], "url": f"/admin/{view}/",
            "csrf_token": csrf_for(client)}
    return client.post(f"/admin/{view}/action/", data=data, follow_redirects=True)


def inline_delete(client, view: str, row_id: int):
    """The list page's row delete button."""
    return post_form(client, f"/admin/{view}/delete/", {"id": str(row_id), "url": f"/admin/{view}/"},
                     follow_redirects=True)


def refused(response, message: str) -> None:
    """The page came back (200) showing ``message`` (HTML-escaped quotes)."""
    html = response.get_data(True).replace("&#39;", "'")
    assert response.status_code == 200
    assert message in html, message


@pytest.fixture
def cast(app, make_user):
    """The people: ``root`` (Admin), ``ursula`` (Users only), ``rolf`` (Roles only),
    ``hank`` (Roles + Hangfire), ``olivia`` (role Operators: Hangfire), ``clara`` (role Clerks: Users)."""
    make_role(app, "Operators", [HANGFIRE])
    make_role(app, "Clerks", [USERS])
    make_user("root", roles=[ADMIN_ROLE])
    make_user("ursula", permissions=[USERS])
    make_user("rolf", permissions=[ROLES])
    make_user("hank", permissions=[ROLES, HANGFIRE])
    make_user("olivia", roles=["Operators"])
    make_user("clara", roles=["Clerks"])
    return {name: sign_in(app, name) for name in ("root", "ursula", "rolf", "hank")}


# --- the role form -----------------------------------------------------------------------------

def test_roles_editor_cannot_create_a_role_granting_what_he_lacks(app, cast):
    response = submit(cast["rolf"], "/admin/role/new/", role_form("Mine", permission_ids(app, HANGFIRE)))
    refused(response, "You can't grant or take away permissions you don't hold: “Hangfire Dashboard”.")
    with app.app_context():
        assert Role.by_name("Mine") is None


def test_roles_editor_cannot_widen_his_own_role(app, cast):
    own = role_id_by_name(app, "rolf-role")
    every = [name for name in REGISTRY if name != HANGFIRE_READ_ONLY]  # (not both dashboard choices)
    response = submit(cast["rolf"], f"/admin/role/edit/?id={own}",
                      role_form("rolf-role", permission_ids(app, *every)))
    refused(response, "You can't grant or take away permissions you don't hold")
    assert role_state(app, own) == ("rolf-role", {ROLES})
    assert cast["rolf"].get("/admin/user/").status_code == 403


def test_roles_editor_cannot_take_away_what_he_lacks(app, cast):
    operators = role_id_by_name(app, "Operators")
    response = submit(cast["rolf"], f"/admin/role/edit/?id={operators}", role_form("Operators"))
    refused(response, "You can't grant or take away permissions you don't hold: “Hangfire Dashboard”.")
    assert role_state(app, operators) == ("Operators", {HANGFIRE})


def test_roles_editor_grants_and_revokes_what_he_holds(app, cast):
    operators = role_id_by_name(app, "Operators")
    path = f"/admin/role/edit/?id={operators}"
    both = role_form("Operators", permission_ids(app, HANGFIRE, ROLES))
    assert submit(cast["hank"], path, both).status_code == 302
    assert role_state(app, operators) == ("Operators", {HANGFIRE, ROLES})
    assert submit(cast["hank"], path, role_form("Operators", permission_ids(app, ROLES))).status_code == 302
    assert role_state(app, operators) == ("Operators", {ROLES})


def test_boxes_the_editor_lacks_are_disabled_and_kept_on_save(app, cast):
    """Rolf may rename Operators; the Hangfire box shows disabled, and saving keeps Hangfire."""
    operators = role_id_by_name(app, "Operators")
    path = f"/admin/role/edit/?id={operators}"
    html = cast["rolf"].get(path).get_data(True)
    hangfire, roles = permission_ids(app, HANGFIRE, ROLES)
    assert re.search(rf'<input[^>]*id="permissions-{hangfire}"[^>]*checked disabled', html)
    assert f'<input type="hidden" name="permissions" value="{hangfire}">' in html
    assert not re.search(rf'<input[^>]*id="permissions-{roles}"[^>]*disabled', html)
    response = submit(cast["rolf"], path, role_form("Operators team", [hangfire]))  # what the browser sends
    assert response.status_code == 302
    assert role_state(app, operators) == ("Operators team", {HANGFIRE})


def test_admin_role_shows_every_permission_ticked_and_disabled(app, cast):
    admin_role = role_id_by_name(app, ADMIN_ROLE)
    html = cast["root"].get(f"/admin/role/edit/?id={admin_role}").get_data(True)
    boxes = re.findall(r'<input class="form-check-input" type="checkbox"[^>]*>', html)
    assert len(boxes) == len(REGISTRY)
    assert all(" checked" in box and " disabled" in box for box in boxes)


@pytest.mark.parametrize("editor", ["root", "rolf"])
def test_unticking_the_admin_role_changes_nothing(app, cast, editor):
    """An admin (or a Roles editor) posting the Admin role with boxes unticked keeps every permission."""
    admin_role = role_id_by_name(app, ADMIN_ROLE)
    response = submit(cast[editor], f"/admin/role/edit/?id={admin_role}",
                      role_form(ADMIN_ROLE, permission_ids(app, ROLES), description="Everything"))
    assert response.status_code == 302
    assert role_state(app, admin_role) == (ADMIN_ROLE, set(REGISTRY))
    assert cast["root"].get("/admin/role/").status_code == 200


def test_role_delete_refused_when_it_grants_what_the_editor_lacks(app, cast):
    operators = role_id_by_name(app, "Operators")
    refused(inline_delete(cast["rolf"], "role", operators), "You can't delete the role Operators")
    assert role_state(app, operators) is not None
    spare = make_role(app, "Spare", [ROLES])
    response = bulk_delete(cast["rolf"], "role", [spare, operators])
    refused(response, "Nothing was deleted. You can't delete the role Operators")
    assert role_state(app, spare) is not None and role_state(app, operators) is not None
    assert "was successfully deleted" in bulk_delete(cast["rolf"], "role", [spare]).get_data(True)
    assert role_state(app, spare) is None


def test_admin_role_delete_is_refused_inline_and_in_bulk(app, cast):
    admin_role = role_id_by_name(app, ADMIN_ROLE)
    refused(inline_delete(cast["root"], "role", admin_role), "The Admin role can't be deleted.")
    refused(bulk_delete(cast["root"], "role", [admin_role]), "The Admin role can't be deleted.")
    assert role_state(app, admin_role) is not None


# --- the user form -----------------------------------------------------------------------------

def test_users_editor_cannot_make_himself_admin(app, cast):
    response = edit_user(app, cast["ursula"], "ursula", roles=["ursula-role", ADMIN_ROLE])
    refused(response, "You can't give or take away roles granting permissions you don't hold: “Admin”.")
    assert roles_of(app, "ursula") == {"ursula-role"}
    assert cast["ursula"].get("/admin/role/").status_code == 403


def test_users_editor_cannot_create_an_admin(app, cast):
    data = user_form("mole", roles=[role_id_by_name(app, ADMIN_ROLE)], password="a long password")
    refused(submit(cast["ursula"], "/admin/user/new/", data), "You can't give or take away roles")
    assert user_state(app, "mole") is None


def test_users_editor_gives_and_takes_roles_he_could_hold(app, cast, make_user):
    make_user("newbie")
    assert edit_user(app, cast["ursula"], "newbie", roles=["Clerks"]).status_code == 302
    assert roles_of(app, "newbie") == {"Clerks"}
    assert edit_user(app, cast["ursula"], "newbie", roles=[]).status_code == 302
    assert roles_of(app, "newbie") == set()


def test_roles_the_editor_cannot_give_are_disabled(app, cast, make_user):
    make_user("newbie")
    html = cast["ursula"].get(f"/admin/user/edit/?id={user_id(app, 'newbie')}").get_data(True)
    admin_role, clerks = role_id_by_name(app, ADMIN_ROLE), role_id_by_name(app, "Clerks")
    assert re.search(rf'<input[^>]*id="roles-{admin_role}"[^>]*disabled', html)
    assert not re.search(rf'<input[^>]*id="roles-{clerks}"[^>]*disabled', html)


@pytest.mark.parametrize("change, message", [
    ({"password": "a brand new password"}, "You can't change root"),
    ({"active": False, "roles": [ADMIN_ROLE]}, "You can't change root"),
    ({"roles": [ADMIN_ROLE]}, "You can't change root"),  # even an edit that changes nothing else
])
def test_users_editor_cannot_touch_a_more_powerful_user(app, cast, change, message):
    before = user_state(app, "root")
    refused(edit_user(app, cast["ursula"], "root", **change), message)
    after = user_state(app, "root")
    assert (after.active, after.password_hash, after.session_stamp) == \
        (before.active, before.password_hash, before.session_stamp)
    assert after.check_password(PASSWORD)


def test_users_editor_cannot_take_a_role_granting_what_he_lacks(app, cast):
    refused(edit_user(app, cast["ursula"], "olivia", roles=[]), "You can't change olivia")
    assert roles_of(app, "olivia") == {"Operators"}


def test_users_editor_cannot_delete_or_sign_out_a_more_powerful_user(app, cast, make_user):
    root = user_id(app, "root")
    refused(inline_delete(cast["ursula"], "user", root), "You can't delete root")
    spare = make_user("spare")
    refused(bulk_delete(cast["ursula"], "user", [spare, root]), "Nothing was deleted. You can't delete root")
    assert user_state(app, "root") is not None and user_state(app, "spare") is not None
    stamp = user_state(app, "root").session_stamp
    response = post_form(cast["ursula"], "/admin/user/sign-out-everywhere/", {"id": str(root)},
                         follow_redirects=True)
    refused(response, "You can't sign out root")
    assert user_state(app, "root").session_stamp == stamp
    assert cast["root"].get("/admin/").status_code == 200


def test_users_editor_deletes_users_no_more_powerful_than_himself(app, cast, make_user):
    spare = make_user("spare")
    assert "was successfully deleted" in inline_delete(cast["ursula"], "user", spare).get_data(True)
    assert user_state(app, "spare") is None
    assert "2 records were successfully deleted" in bulk_delete(
        cast["ursula"], "user", [user_id(app, "clara"), make_user("spare2")]).get_data(True)


# --- the last administrator ----------------------------------------------------------------------

@pytest.fixture
def everything(app, make_user):
    """``eve`` holds every permission through a role that isn't Admin; root is the only admin."""
    make_user("root", roles=[ADMIN_ROLE])
    make_role(app, "Everything", list(REGISTRY))
    make_user("eve", roles=["Everything"])
    return sign_in(app, "eve")


def test_last_admin_cannot_lose_the_role_be_deactivated_or_deleted(app, everything):
    message = "root is the last active administrator"
    refused(edit_user(app, everything, "root", roles=[]), message)
    refused(edit_user(app, everything, "root", active=False, roles=[ADMIN_ROLE]), message)
    refused(inline_delete(everything, "user", user_id(app, "root")), message)
    refused(bulk_delete(everything, "user", [user_id(app, "root")]), message)
    root = user_state(app, "root")
    assert root is not None and root.active
    assert roles_of(app, "root") == {ADMIN_ROLE}


def test_an_admin_can_step_down_once_another_is_active(app, everything, make_user):
    make_user("ada", roles=[ADMIN_ROLE], active=False)  # an inactive admin doesn't count
    refused(edit_user(app, everything, "root", roles=[]), "root is the last active administrator")
    assert edit_user(app, everything, "ada", roles=[ADMIN_ROLE]).status_code == 302
    refused(bulk_delete(everything, "user", [user_id(app, "root"), user_id(app, "ada")]),
            "root, ada are the last active administrators")
    assert edit_user(app, everything, "root", roles=[]).status_code == 302
    assert roles_of(app, "root") == set()


def test_admin_cannot_remove_his_own_admin_role_when_alone(app, make_user):
    make_user("root", roles=[ADMIN_ROLE])
    refused(edit_user(app, sign_in(app, "root"), "root", roles=[]), "root is the last active administrator")
    assert roles_of(app, "root") == {ADMIN_ROLE}


def test_view_only_and_full_dashboard_are_one_choice(app, cast):
    """The form that offers "Hangfire Dashboard" or "View only" refuses both at once."""
    ids = permission_ids(app, HANGFIRE, HANGFIRE_READ_ONLY)
    refused(submit(cast["hank"], "/admin/role/new/", role_form("Both", ids)), "not both")
    with app.app_context():
        assert db.session.scalar(select(Permission).where(Permission.name == HANGFIRE)) is not None
        assert Role.by_name("Both") is None
