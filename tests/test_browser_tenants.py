"""In Chromium, the README's "Tenants" story as people live it: a host admin creates tenant acme, a role of
acme holding "Hangfire Dashboard" and acme's user ann through Configuration; ann signs in to acme and sees
acme's jobs only (a 403 page while JOBS_DASHBOARD_TENANTS is off); the sign-in page remembers the tenant
per browser; host users see each job's and recurring job's tenant, another tenant sees neither.

Set ``BROWSER_SCREENSHOT_DIR`` to keep the screenshots of the main screens.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from app.extensions import db
from app.models import Role, Tenant, User
from app.permissions import ADMIN_ROLE, HANGFIRE, OUTBOX, REGISTRY, TENANTS
from tests.browser import loaded, screenshot
from tests.helpers.ledger import failed_job
from tests.helpers.web import PASSWORD
from tests.test_cli_accounts import ok, run
from tests.test_tenant_admin import tenant_role, tenant_user

pytestmark = pytest.mark.browser

KAPUT = "kaput"  # the error every owner's failed job shares: only the tenant scope tells them apart
DIGEST = "acme.digest"


@pytest.fixture
def app_config(app_config):
    """Tenant users may open the dashboard (scoped to their tenant)."""
    return {**app_config, "JOBS_DASHBOARD_TENANTS": True}


@pytest.fixture
def root(make_user) -> str:
    """A host admin (the Admin role); returns the username."""
    make_user("root", roles=[ADMIN_ROLE])
    return "root"


@pytest.fixture
def acme(runner) -> str:
    """Tenant acme, displayed as "Acme Ltd"; returns its name."""
    ok(run(runner, "tenants", "create", "acme", "--display-name", "Acme Ltd"))
    return "acme"


@pytest.fixture
def operators(runner, acme) -> str:
    """acme's role "Operators", holding "Hangfire Dashboard"; returns its name."""
    tenant_role(runner, acme, "Operators", HANGFIRE)
    return "Operators"


@pytest.fixture
def ann(runner, acme, operators) -> str:
    """acme's user ann, an Operator; returns the username."""
    tenant_user(runner, acme, "ann", operators)
    return "ann"


@pytest.fixture
def gus(runner) -> str:
    """globex's user gus, whose role also holds "Hangfire Dashboard"; returns the username."""
    ok(run(runner, "tenants", "create", "globex"))
    tenant_role(runner, "globex", "Operators", HANGFIRE)
    tenant_user(runner, "globex", "gus", "Operators")
    return "gus"


@pytest.fixture
def failures(app, ann, gus) -> dict[str, str]:
    """One Failed job each of acme, globex and the host, same task, same error; ids by owner."""
    return {owner: failed_job(app, message=KAPUT, tenant=tenant)
            for owner, tenant in (("acme", "acme"), ("globex", "globex"), ("host", None))}


@pytest.fixture
def digest(app, acme) -> str:
    """acme's recurring job ``acme.digest`` (06:00 daily), declared in code and synced; returns its id."""
    from tasks import recurring
    from tests.jobs import recurring_tick

    recurring.recurring(DIGEST, cron="0 6 * * *", tenant=acme)(recurring_tick)
    with app.app_context():
        assert recurring.sync()["errors"] == {}
    yield DIGEST
    recurring.DEFINITIONS.pop(DIGEST, None)


# --- what a person does ----------------------------------------------------------------------------------

def sign_in_to(page, tenant: str, username: str) -> None:
    """Sign in through the login form to ``tenant`` ("" for the host) and wait to leave the page."""
    page.goto("/login")
    page.get_by_label("Tenant").fill(tenant)
    page.get_by_label("Username or email").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url)
    loaded(page)


def sign_out(page) -> None:
    """Press "Sign out" in the bar and wait for the sign-in page."""
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You have been signed out.")).to_be_visible()


def open_configuration(page, name: str) -> None:
    """Configuration → ``name`` in the navigation bar; waits for that list's heading."""
    menu = page.get_by_role("navigation", name="Main")
    menu.get_by_text("Configuration").click()
    menu.get_by_role("link", name=name, exact=True).click()
    expect(page.get_by_role("heading", name=name)).to_be_visible()


def form_field(page, label: str):
    """The admin form's field labelled ``label`` (the admin appends " *" to a required field's label)."""
    return page.get_by_label(re.compile(rf"^{label}\s*\*?\s*$"))


def start_creating(page) -> None:
    """Press the list's "Create" tab and wait for the form."""
    page.get_by_role("link", name="Create", exact=True).click()
    expect(page.get_by_role("button", name="Save")).to_be_visible()


def pick_tenant(page, tenant: str) -> None:
    """Choose ``tenant`` in a create form's Tenant picker (the admin's Select2 box): open it, click it."""
    picker = page.locator("#s2id_tenant")
    picker.click()
    page.locator("#select2-drop").get_by_role("option", name=tenant, exact=True).click()
    expect(picker).to_contain_text(tenant)


def save_new(page) -> None:
    """Press Save on a create form and wait for the admin's word that it was created."""
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Record was successfully created.")).to_be_visible()


def admin_row(page, text: str):
    """The admin list's row holding ``text``."""
    return page.get_by_role("row").filter(has_text=text)


def open_dashboard(page) -> None:
    """Go to the dashboard and wait for its heading."""
    page.goto("/hangfire")
    expect(page.get_by_role("heading", name="Hangfire Dashboard")).to_be_visible()


def counter(page, name: str):
    """The value of the overview's counter ``name`` (failed, enqueued, recurring, ...)."""
    return page.get_by_test_id(f"count-{name}").locator(".hf-counter-value")


def open_tab(page, name: str) -> None:
    """Press a tab of the dashboard (Recurring, Queues, ...) and wait for it to be the current one."""
    tab = page.locator(".hf-tabs").get_by_role("link", name=name, exact=True)
    tab.click()
    expect(tab).to_have_attribute("aria-current", "page")


def search(page, text: str) -> None:
    """Type ``text`` in the dashboard's header search and press Enter."""
    box = page.get_by_role("combobox", name="Search jobs")
    box.fill(text)
    box.press("Enter")


def job_row(page, job_id: str):
    """The dashboard list's row of ``job_id``."""
    return page.locator(f'tr[data-job-id="{job_id}"]')


def recurring_row(page, recurring_id: str):
    """The Recurring page's row of ``recurring_id``."""
    return page.locator(f'tr[data-recurring-id="{recurring_id}"]')


def expect_error_page(page, status: int) -> None:
    """The page is the app's error page for ``status``, inside the app's layout (bar and signed-in user)."""
    expect(page.get_by_test_id("error-page")).to_have_attribute("data-status", str(status))
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    expect(page.get_by_test_id("signed-in-user")).to_be_visible()


def tenant_row(app, name: str) -> Tenant | None:
    """A detached copy of the tenant called ``name`` (None when there is none)."""
    with app.app_context():
        tenant = Tenant.by_name(name)
        if tenant is not None:
            db.session.expunge(tenant)
        return tenant


def role_permissions(app, name: str, tenant: str) -> set[str] | None:
    """Names of the permissions of ``tenant``'s role ``name`` (None when there is no such role)."""
    with app.app_context():
        role = Role.by_name(name, Tenant.by_name(tenant))
        return None if role is None else {p.name for p in role.permissions}


def user_roles(app, username: str, tenant: str) -> set[str] | None:
    """``tenant``'s user ``username``'s role names (None when there is no such user)."""
    with app.app_context():
        user = User.by_login(username, Tenant.by_name(tenant))
        return None if user is None else {role.name for role in user.roles}


# --- the host admin sets a tenant up ---------------------------------------------------------------------

def test_a_host_admin_creates_a_tenant(app, root, new_page):
    page = new_page()
    sign_in_to(page, "", root)
    open_configuration(page, "Tenants")
    start_creating(page)
    form_field(page, "Name").fill("acme")
    form_field(page, "Display name").fill("Acme Ltd")
    save_new(page)
    expect(admin_row(page, "acme")).to_contain_text("Acme Ltd")
    screenshot(page, "tenants-list")
    acme = tenant_row(app, "acme")
    assert acme is not None and (acme.display_name, acme.active) == ("Acme Ltd", True)


def test_a_host_admin_creates_a_tenant_role_holding_the_dashboard(app, root, acme, new_page):
    page = new_page()
    sign_in_to(page, "", root)
    open_configuration(page, "Roles")
    start_creating(page)
    form_field(page, "Name").fill("Operators")
    pick_tenant(page, acme)
    page.get_by_label("Hangfire Dashboard", exact=True).check()
    screenshot(page, "tenant-role-form")
    save_new(page)
    row = admin_row(page, "Operators")
    expect(row).to_contain_text(acme)
    expect(row).to_contain_text("Hangfire Dashboard")
    assert role_permissions(app, "Operators", acme) == {HANGFIRE}


def test_the_role_form_offers_host_only_permissions_for_a_host_role_only(root, acme, new_page):
    page = new_page()
    sign_in_to(page, "", root)
    page.goto("/admin/role/new/")
    outbox = page.get_by_label(REGISTRY[OUTBOX].display_name, exact=True)
    outbox.check()  # the host is picked at first: a host role may hold it
    pick_tenant(page, acme)
    expect(outbox).to_be_hidden()
    expect(outbox).not_to_be_checked()  # unticked, so not submitted
    expect(page.get_by_label("Hangfire Dashboard", exact=True)).to_be_visible()
    pick_tenant(page, "(host)")
    expect(outbox).to_be_visible()


def test_a_tenant_role_forced_to_hold_a_host_only_permission_is_refused(app, root, acme, new_page):
    page = new_page()
    sign_in_to(page, "", root)
    page.goto("/admin/role/new/")
    form_field(page, "Name").fill("Sneaky")
    pick_tenant(page, acme)
    outbox = page.get_by_label(REGISTRY[OUTBOX].display_name, exact=True)
    outbox.evaluate("box => { box.disabled = false; box.checked = true; }")  # past the form, as a forger
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("A tenant's role can't hold host-only permissions")).to_be_visible()
    assert role_permissions(app, "Sneaky", acme) is None


def test_the_user_form_offers_the_picked_tenants_roles_only(root, acme, operators, new_page):
    page = new_page()
    sign_in_to(page, "", root)
    page.goto("/admin/user/new/")
    host_admin = page.get_by_label(ADMIN_ROLE, exact=True)
    tenant_operators = page.get_by_label(f"{acme}: {operators}", exact=True)
    expect(host_admin).to_be_visible()
    expect(tenant_operators).to_be_hidden()
    pick_tenant(page, acme)
    expect(host_admin).to_be_hidden()
    expect(tenant_operators).to_be_visible()


def test_a_tenant_roles_form_offers_no_host_only_permission(root, operators, new_page):
    page = new_page()
    sign_in_to(page, "", root)
    open_configuration(page, "Roles")
    admin_row(page, operators).get_by_title("Edit Record").click()
    expect(page.get_by_label("Hangfire Dashboard", exact=True)).to_be_checked()
    for host_only in (OUTBOX, TENANTS):
        expect(page.get_by_label(REGISTRY[host_only].display_name, exact=True)).to_have_count(0)
    screenshot(page, "tenant-role-edit")


def test_a_host_admin_creates_a_tenant_user_who_signs_in_to_the_tenant(app, root, acme, operators, new_page):
    page = new_page()
    sign_in_to(page, "", root)
    open_configuration(page, "Users")
    start_creating(page)
    pick_tenant(page, acme)
    form_field(page, "Username").fill("ann")
    form_field(page, "Email").fill("ann@example.com")
    page.get_by_label(f"{acme}: {operators}", exact=True).check()
    form_field(page, "Password").fill(PASSWORD)
    screenshot(page, "tenant-user-form")
    save_new(page)
    row = admin_row(page, "ann@example.com")
    expect(row).to_contain_text(acme)
    expect(row).to_contain_text(operators)
    assert user_roles(app, "ann", acme) == {operators}

    ann = new_page()
    sign_in_to(ann, acme, "ann")
    expect(ann.get_by_role("heading", name="Hangfire Dashboard")).to_be_visible()  # her start page
    expect(ann.get_by_test_id("signed-in-user")).to_have_text("ann")


# --- ann, on acme's dashboard ----------------------------------------------------------------------------

def test_a_tenant_users_counters_and_lists_hold_only_the_tenants_jobs(ann, failures, new_page):
    page = new_page()
    sign_in_to(page, "acme", ann)
    open_dashboard(page)
    expect(counter(page, "failed")).to_have_text("1")
    screenshot(page, "tenant-overview")
    page.get_by_test_id("count-failed").click()
    expect(job_row(page, failures["acme"])).to_be_visible()
    expect(page.get_by_test_id("match-count")).to_have_text("1 job")
    expect(page.locator('[data-state-count="failed"] .hf-pill')).to_have_text("1")
    for theirs in (failures["globex"], failures["host"]):
        expect(job_row(page, theirs)).to_have_count(0)
    screenshot(page, "tenant-failed-list")


def test_a_tenant_users_text_search_finds_only_the_tenants_job(ann, failures, new_page):
    page = new_page()
    sign_in_to(page, "acme", ann)
    open_dashboard(page)
    search(page, KAPUT)
    expect(page).to_have_url(re.compile(rf"/hangfire/jobs/all\?q={KAPUT}$"))
    expect(job_row(page, failures["acme"])).to_be_visible()
    expect(page.get_by_test_id("match-count")).to_have_text("1 job matching")
    for theirs in (failures["globex"], failures["host"]):
        expect(job_row(page, theirs)).to_have_count(0)


def test_a_tenant_users_id_search_opens_the_tenants_job_and_no_other(ann, failures, new_page):
    page = new_page()
    sign_in_to(page, "acme", ann)
    open_dashboard(page)
    for theirs in (failures["globex"], failures["host"]):
        search(page, "#" + theirs[-8:])
        expect(page.get_by_text("No job matches this filter.")).to_be_visible()
        expect(page).not_to_have_url(re.compile("/job/"))
    mine = failures["acme"]
    search(page, "#" + mine[-8:])
    expect(page).to_have_url(re.compile(f"/hangfire/job/{mine}$"))
    expect(page.get_by_test_id("job-title")).to_be_visible()


def test_a_tenant_users_search_suggestions_offer_only_the_tenants_job(ann, failures, new_page):
    page = new_page()
    sign_in_to(page, "acme", ann)
    open_dashboard(page)
    box = page.get_by_role("combobox", name="Search jobs")
    options = page.get_by_role("listbox", name="Suggestions").get_by_role("option")
    for theirs in (failures["globex"], failures["host"]):
        typed = "#" + theirs[-8:]
        box.fill(typed)
        expect(options.last).to_contain_text(f"Search arguments and errors for “{typed}”")  # answered
        expect(options).to_have_count(1)  # no job offered
    mine = "#" + failures["acme"][-8:]
    box.fill(mine)
    expect(options.first).to_contain_text(mine)


def test_another_tenants_job_url_answers_the_404_page(ann, failures, new_page):
    page = new_page()
    sign_in_to(page, "acme", ann)
    for theirs in (failures["globex"], failures["host"]):
        response = page.goto(f"/hangfire/job/{theirs}")
        assert response.status == 404
        expect_error_page(page, 404)
        expect(page.get_by_text(KAPUT)).to_have_count(0)
    screenshot(page, "tenant-foreign-job-404")


def test_a_tenant_user_gets_the_403_page_while_the_switch_is_off(app, ann, new_page):
    app.config["JOBS_DASHBOARD_TENANTS"] = False
    page = new_page()
    sign_in_to(page, "acme", ann)
    response = page.goto("/hangfire")
    assert response.status == 403
    expect_error_page(page, 403)
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard")).to_have_count(0)
    screenshot(page, "tenant-dashboard-403")


# --- the sign-in page remembers the tenant per browser ---------------------------------------------------

def test_signing_out_leaves_the_tenant_filled_in(ann, new_page):
    page = new_page()
    sign_in_to(page, "acme", ann)
    sign_out(page)
    expect(page.get_by_label("Tenant")).to_have_value("acme")
    screenshot(page, "tenant-remembered-login")


def test_another_browser_starts_with_a_blank_tenant(ann, new_page):
    page = new_page()
    sign_in_to(page, "acme", ann)
    elsewhere = new_page()
    elsewhere.goto("/login")
    expect(elsewhere.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(elsewhere.get_by_label("Tenant")).to_have_value("")


def test_signing_in_to_the_host_forgets_the_tenant(ann, root, new_page):
    page = new_page()
    sign_in_to(page, "acme", ann)
    sign_out(page)
    sign_in_to(page, "", root)
    sign_out(page)
    expect(page.get_by_label("Tenant")).to_have_value("")


# --- host users see tenants; tenants see only their own --------------------------------------------------

def test_a_host_user_sees_each_jobs_tenant(root, failures, new_page):
    page = new_page()
    sign_in_to(page, "", root)
    open_dashboard(page)
    expect(counter(page, "failed")).to_have_text("3")
    page.get_by_test_id("count-failed").click()
    for owner in ("acme", "globex"):
        expect(job_row(page, failures[owner]).locator(".hf-tenant")).to_have_text(owner)
    expect(job_row(page, failures["host"])).to_be_visible()
    expect(job_row(page, failures["host"]).locator(".hf-tenant")).to_have_count(0)
    screenshot(page, "host-failed-list-tenants")
    job_row(page, failures["acme"]).locator(".hf-job-name").click()
    expect(page.get_by_test_id("job-tenant")).to_have_text("acme")


def test_a_tenants_recurring_job_is_on_its_recurring_page(ann, digest, new_page):
    page = new_page()
    sign_in_to(page, "acme", ann)
    open_dashboard(page)
    open_tab(page, "Recurring")
    expect(recurring_row(page, digest)).to_be_visible()
    expect(recurring_row(page, digest).get_by_test_id("recurring-tenant")).to_have_count(0)
    expect(page.locator("tr[data-recurring-id]")).to_have_count(1)  # not the host's reports-cleanup
    screenshot(page, "tenant-recurring")


def test_a_host_user_sees_a_tenants_recurring_job_with_its_tenant(root, digest, new_page):
    page = new_page()
    sign_in_to(page, "", root)
    open_dashboard(page)
    open_tab(page, "Recurring")
    expect(recurring_row(page, digest).get_by_test_id("recurring-tenant")).to_have_text("acme")
    screenshot(page, "host-recurring-tenants")


def test_another_tenant_doesnt_see_a_tenants_recurring_job(gus, digest, new_page):
    page = new_page()
    sign_in_to(page, "globex", gus)
    open_dashboard(page)
    open_tab(page, "Recurring")
    expect(page.get_by_text("No recurring jobs are declared.")).to_be_visible()
    expect(recurring_row(page, digest)).to_have_count(0)
