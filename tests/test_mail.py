"""Mail: MAIL_URL parsing, real SMTP (aiosmtpd: STARTTLS, AUTH, implicit TLS), the outbox and its admin
page, and the ``email.send`` job end to end with real workers: retried while the SMTP server is down,
sent once even when the job runs again.
"""
from __future__ import annotations

import os
import ssl
import subprocess
from email.message import EmailMessage

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from app import create_app
from app.config import ConfigError
from app.mail import outbox
from app.mail.attachments import Attachment, AttachmentMissing, AttachmentRefused, resolve
from app.mail.message import compose, message_id
from app.mail.transport import SmtpTransport, parse_mail_url
from app.permissions import ADMIN_ROLE, OUTBOX
from tasks import lifecycle
from tests.helpers.ledger import attempts, job_state
from tests.helpers.mail import after_a_later_email, enqueue_email
from tests.helpers.web import sign_in
from tests.services import SmtpServer
from tests.workers import wait_for

SMTP_USER, SMTP_PASSWORD = "mailer", "s3cret pass"


# --- a real SMTP server in the test process ------------------------------------------------------

def check_password(server, session, envelope, mechanism, auth_data):
    """Accept only SMTP_USER / SMTP_PASSWORD."""
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login == SMTP_USER.encode()
          and auth_data.password == SMTP_PASSWORD.encode())
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1: (cert path, key path)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def server_tls(certificate) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


def a_message(to: str = "ann@example.com", subject: str = "Hello") -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "jobs@example.com", to, subject
    message["Message-ID"] = "<test-1@example.com>"
    message.set_content("Body text")
    return message


# --- MAIL_URL ------------------------------------------------------------------------------------

def test_mail_url_forms():
    plain = parse_mail_url("smtp://mail.example.com")
    assert (plain.host, plain.port, plain.starttls, plain.implicit_tls, plain.username) == \
        ("mail.example.com", 25, False, False, None)
    submission = parse_mail_url("smtp://user%40example.com:p%3Ass@mail.example.com?starttls=1&timeout=7")
    assert (submission.port, submission.starttls, submission.username, submission.password,
            submission.timeout) == (587, True, "user@example.com", "p:ss", 7.0)
    implicit = parse_mail_url("smtps://u:p@mail.example.com")
    assert (implicit.port, implicit.implicit_tls) == (465, True)
    assert parse_mail_url("smtp://h:2525?starttls=yes&verify=0").port == 2525
    assert "p:ss" not in repr(submission) and "***" in repr(submission)


@pytest.mark.parametrize("url", ["http://mail.example.com", "smtp://", "smtp://h?starttls=maybe",
                                 "smtps://h?starttls=1", "smtp://h:notaport", "smtp://h?timeout=soon"])
def test_malformed_mail_url_is_refused_at_start(app_config, url):
    with pytest.raises(ConfigError):
        parse_mail_url(url)
    with pytest.raises(ConfigError):
        create_app({**app_config, "MAIL_URL": url})


def test_message_id_is_stable(tmp_path):
    assert message_id("report-7-ab-ready", "Jobs <jobs@example.com>") == "<report-7-ab-ready@example.com>"
    assert message_id("k", "jobs") == "<k@localhost>"
    with pytest.raises(ValueError):
        message_id("../evil", "jobs@example.com")
    (tmp_path / "a.csv").write_text("a,b\n")
    attached = Attachment(path=str(tmp_path / "a.csv"), filename="a.csv", content_type="text/csv")
    first = compose("key-1", "jobs@example.com", ["x@example.com"], "S", "B", [attached])
    second = compose("key-1", "jobs@example.com", ["x@example.com"], "S", "B", [])
    assert first["Message-ID"] == second["Message-ID"] == "<key-1@example.com>"
    assert [p.get_filename() for p in first.iter_attachments()] == ["a.csv"]
    gone = Attachment(path=str(tmp_path / "gone.csv"), filename="gone.csv", content_type="text/csv")
    with pytest.raises(AttachmentMissing):
        compose("key-2", "jobs@example.com", ["x@example.com"], "S", "B", [gone])


@pytest.mark.parametrize("spec", [
    {"path": "reports/1/0123456789abcdef0123456789abcdef.csv", "filename": "a.csv"},
    {"path": "../app.db"},
    {"file": 1},
    {"report": 1, "path": "reports/1/x.csv"},
    "reports/1/x.csv",
    ["report", 1],
    {},
])
def test_attachments_are_named_by_kind_never_by_path(app, spec):
    with app.app_context(), pytest.raises(AttachmentRefused):
        resolve(spec, ["ann@example.com"])


# --- SMTP transport against a real server --------------------------------------------------------

def authenticating_server(certificate) -> SmtpServer:
    """A server that requires STARTTLS, then AUTH as SMTP_USER."""
    return SmtpServer(tls_context=server_tls(certificate), require_starttls=True,
                      authenticator=check_password, auth_required=True)


def test_starttls_and_authentication(certificate):
    with authenticating_server(certificate) as server:
        url = (f"smtp://{SMTP_USER}:s3cret%20pass@127.0.0.1:{server.port}?starttls=1&timeout=5"
               f"&cafile={certificate[0]}")
        outcome = SmtpTransport(parse_mail_url(url)).send(a_message())
        [received] = server.wait_for_messages(1)
        assert received["Subject"] == "Hello" and outcome["transport"] == "smtp"
        assert server.inbox.envelopes[0]["tls"] is True
        assert server.inbox.envelopes[0]["to"] == ["ann@example.com"]


def test_wrong_password_and_untrusted_certificate_are_errors(certificate):
    import smtplib

    with authenticating_server(certificate) as server:
        base = f"127.0.0.1:{server.port}?starttls=1&timeout=5"
        with pytest.raises(smtplib.SMTPAuthenticationError):
            wrong_password = f"smtp://{SMTP_USER}:wrong@{base}&cafile={certificate[0]}"
            SmtpTransport(parse_mail_url(wrong_password)).send(a_message())
        with pytest.raises(ssl.SSLError):
            SmtpTransport(parse_mail_url(f"smtp://{SMTP_USER}:x@{base}")).send(a_message())
        assert server.inbox.messages == []


def test_smtps_implicit_tls_with_login(certificate):
    with SmtpServer(ssl_context=server_tls(certificate), authenticator=check_password, auth_required=False,
                    auth_require_tls=False) as server:
        url = f"smtps://{SMTP_USER}:s3cret%20pass@127.0.0.1:{server.port}?timeout=5&verify=0"
        SmtpTransport(parse_mail_url(url)).send(a_message(subject="Over TLS"))
        [received] = server.wait_for_messages(1)
        assert received["Subject"] == "Over TLS"
        assert server.inbox.envelopes[0]["login"] == SMTP_USER.encode()


# --- the outbox and its admin page ----------------------------------------------------------------

def outbox_folder(app) -> str:
    return os.path.join(app.instance_path, "outbox")


def test_outbox_transport_names_files_by_message_id(tmp_path):
    transport = outbox.OutboxTransport(str(tmp_path))
    assert transport.send(a_message()) == {"transport": "outbox", "file": "test-1.eml"}
    transport.send(a_message(subject="Again"))  # same Message-ID: the same file, rewritten
    assert sorted(os.listdir(tmp_path)) == ["test-1.eml"]
    [entry] = outbox.list_messages(str(tmp_path))
    assert (entry.subject, entry.to) == ("Again", "ann@example.com")


@pytest.mark.parametrize("name", ["../app.db", "..", ".hidden.eml", "a/b.eml", "x.txt", "a b.eml",
                                  "%2e%2e.eml"])
def test_outbox_names_are_validated(tmp_path, name):
    assert outbox.resolve(str(tmp_path), name) is None
    assert outbox.show(str(tmp_path), name) is None


def test_outbox_page_lists_and_shows_messages_escaped(app, make_user):
    make_user("root", roles=[ADMIN_ROLE])
    hostile = a_message(to="<b>eve</b>@example.com", subject="<script>alert(1)</script> report")
    hostile.set_content("<img src=x onerror=alert(2)> body")
    outbox.OutboxTransport(outbox_folder(app)).send(hostile)
    admin = sign_in(app, "root")

    listing = admin.get("/admin/outbox/")
    html = listing.get_data(True)
    assert listing.status_code == 200 and 'href="/admin/outbox/"' in html  # in the menu
    assert "&lt;script&gt;alert(1)&lt;/script&gt; report" in html and "<script>alert(1)" not in html

    shown = admin.get("/admin/outbox/test-1.eml").get_data(True)
    assert "&lt;img src=x onerror=alert(2)&gt; body" in shown and "<img src=x" not in shown
    raw = admin.get("/admin/outbox/test-1.eml/raw")
    assert raw.mimetype == "message/rfc822" and b"Subject:" in raw.data
    for probe in ("..%2Fapp.db", "..%2F..%2Fetc%2Fpasswd", "missing.eml", ".eml",
                  "..%2Foutbox%2Ftest-1.eml", "%2e%2e%2fapp.db/raw"):
        assert admin.get(f"/admin/outbox/{probe}").status_code == 404, probe
    assert admin.get("/admin/outbox/test-1.eml%00").status_code == 400  # NUL is refused before any view


def test_outbox_page_needs_the_outbox_permission(app, make_user):
    make_user("olga", permissions=[OUTBOX])
    make_user("nina")
    assert sign_in(app, "olga").get("/admin/outbox/").status_code == 200
    assert sign_in(app, "nina").get("/admin/outbox/").status_code == 403
    anonymous = app.test_client().get("/admin/outbox/")
    assert anonymous.status_code == 302
    assert "/login?next=%2Fadmin%2Foutbox%2F" in anonymous.headers["Location"]


# --- email.send with real workers -----------------------------------------------------------------

def test_email_job_writes_the_outbox_when_mail_url_is_unset(app, start_worker):
    job_id = enqueue_email(app, "welcome-1", subject="<Welcome>")
    start_worker(queues="email")
    wait_for(lambda: job_state(app, job_id) == lifecycle.SUCCEEDED, message="email job succeeded")
    [entry] = outbox.list_messages(outbox_folder(app))
    assert (entry.name, entry.subject) == ("welcome-1.eml", "<Welcome>")
    assert outbox.show(outbox_folder(app), entry.name).bodies[0][1].strip() == "Hello from a job"


def test_smtp_down_for_a_while_is_retried_then_delivered_once(app, start_worker):
    server = SmtpServer()  # nothing listens on its port yet
    job_id = enqueue_email(app, "retry-me-1")
    start_worker(queues="email", MAIL_URL=server.url, JOBS_BACKOFF_SCALE="0.01")
    wait_for(lambda: attempts(app, job_id) >= 3, timeout=30, message="at least two failed attempts")
    assert job_state(app, job_id) in (lifecycle.SCHEDULED, lifecycle.ENQUEUED, lifecycle.PROCESSING)
    with server:
        wait_for(lambda: job_state(app, job_id) == lifecycle.SUCCEEDED, timeout=30, message="delivered")
        [message] = after_a_later_email(app, server)  # nothing else arrived before a later email did
        assert message["Message-ID"] == "<retry-me-1@localhost>"
        assert "ConnectionRefusedError" in failure_types(app, job_id)


def test_an_email_job_run_twice_sends_once(app, runner, start_worker, smtp_server):
    job_id = enqueue_email(app, "twice-1")
    start_worker(queues="email", MAIL_URL=smtp_server.url)
    wait_for(lambda: job_state(app, job_id) == lifecycle.SUCCEEDED, message="first run")
    result = runner.invoke(args=["jobs", "retry", job_id])  # a person requeues the finished job
    assert result.exit_code == 0, result.output
    wait_for(lambda: succeeded_runs(app, job_id) == 2, message="second run")
    second = enqueue_email(app, "twice-1")  # and the same message enqueued again
    wait_for(lambda: job_state(app, second) == lifecycle.SUCCEEDED, message="duplicate job")
    assert len(after_a_later_email(app, smtp_server)) == 1


def failure_types(app, job_id: str) -> set[str]:
    from tasks.queries import history

    with app.app_context():
        return {h.details.get("exception_type") for h in history(job_id) if h.state == lifecycle.SCHEDULED}


def succeeded_runs(app, job_id: str) -> int:
    from tasks.queries import history

    with app.app_context():
        return sum(1 for h in history(job_id) if h.state == lifecycle.SUCCEEDED)
