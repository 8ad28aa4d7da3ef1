"""authgate.mail against a real SMTP server (aiosmtpd on loopback, via
`authgate.testing.MailCatcher`): plain, STARTTLS with login, implicit TLS; the outbox's
retries, its silence about what a mail says, and its fork safety; header injection;
templates; mail URLs, and that no repr, str or error shows a password."""

from __future__ import annotations

import io
import json
import logging
import os
import smtplib
import ssl
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from authgate.errors import ConfigError
from authgate.mail import (
    PLACEHOLDERS,
    ConsoleSender,
    MailMessage,
    MailSender,
    MailTemplates,
    MemorySender,
    Outbox,
    SmtpSender,
    open_mailer,
)
from authgate.testing import MailCatcher, free_port

SENDER = "Example <no-reply@example.com>"
LINK = "https://example.com/reset?token=tok-9f8e7d6c5b4a"
SECRET = "s3cr3t-Passw0rd"


def reset_mail(to: str = "alice@example.com") -> MailMessage:
    return MailMessage(
        to=to,
        subject="Reset your password for Example",
        text=f"Open this link within 30 minutes:\n\n{LINK}\n",
        html=f'<p><a href="{LINK}">Reset your password</a></p>',
        kind="password_reset",
    )


@pytest.fixture
def catcher() -> Iterator[MailCatcher]:
    with MailCatcher() as server:
        yield server


# -- delivery to a real server ---------------------------------------------------------------


def test_a_mail_reaches_a_real_smtp_server_with_text_and_html(catcher: MailCatcher) -> None:
    open_mailer(catcher.url, SENDER).send(reset_mail())

    mail = catcher.wait_for("alice@example.com")
    assert mail["From"] == SENDER
    assert mail["To"] == "alice@example.com"
    assert mail["Subject"] == "Reset your password for Example"
    assert mail["Date"] and mail["Message-ID"].endswith("@example.com>")
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail.get_content_type() == "multipart/alternative"
    plain = mail.get_body(preferencelist=("plain",))
    rich = mail.get_body(preferencelist=("html",))
    assert plain is not None and LINK in plain.get_content()
    assert rich is not None and f'href="{LINK}"' in rich.get_content()
    assert catcher.links(mail) == [LINK]
    [caught] = catcher.caught
    assert caught.mail_from == "no-reply@example.com"
    assert caught.recipients == ("alice@example.com",)
    assert (caught.tls, caught.login) == (False, None)


def test_a_mail_without_html_is_plain_text(catcher: MailCatcher) -> None:
    message = MailMessage(to="bob@example.com", subject="Hello", text="Just text.\n")
    open_mailer(catcher.url, SENDER).send(message)

    mail = catcher.wait_for("bob@example.com")
    assert mail.get_content_type() == "text/plain"
    assert mail.get_content() == "Just text.\n"
    assert catcher.links(mail) == []


def test_starttls_and_login_deliver() -> None:
    with MailCatcher(starttls=True, username="mailer", password=SECRET) as server:
        sender = SmtpSender(
            server.host,
            server.port,
            sender=SENDER,
            username="mailer",
            password=SECRET,
            ssl_context=server.client_context,
        )
        sender.send(reset_mail())

        server.wait_for("alice@example.com")
        [caught] = server.caught
        assert (caught.tls, caught.login) == (True, "mailer")


def test_a_wrong_password_makes_the_sender_raise() -> None:
    with MailCatcher(starttls=True, username="mailer", password=SECRET) as server:
        sender = SmtpSender(
            server.host,
            server.port,
            sender=SENDER,
            username="mailer",
            password="not-the-password",
            ssl_context=server.client_context,
        )
        with pytest.raises(smtplib.SMTPAuthenticationError) as raised:
            sender.send(reset_mail())
        assert "not-the-password" not in str(raised.value)
        assert server.caught == []


def test_the_catcher_refuses_mail_from_a_client_that_did_not_log_in() -> None:
    with MailCatcher(starttls=True, username="mailer", password=SECRET) as server:
        sender = SmtpSender(
            server.host, server.port, sender=SENDER, ssl_context=server.client_context
        )
        with pytest.raises(smtplib.SMTPSenderRefused):
            sender.send(reset_mail())
        assert server.caught == []


def test_the_servers_certificate_is_checked_by_default() -> None:
    with MailCatcher(starttls=True) as server:
        sender = SmtpSender(server.host, server.port, sender=SENDER)
        with pytest.raises(ssl.SSLCertVerificationError):
            sender.send(reset_mail())
        assert server.caught == []


def test_a_server_without_starttls_is_an_error_not_a_fall_back_to_plaintext(
    catcher: MailCatcher,
) -> None:
    sender = SmtpSender(catcher.host, catcher.port, sender=SENDER, starttls=True)
    with pytest.raises(smtplib.SMTPNotSupportedError):
        sender.send(reset_mail())
    assert catcher.caught == []


def test_implicit_tls_smtps_delivers() -> None:
    with MailCatcher(implicit_tls=True, username="mailer", password=SECRET) as server:
        sender = SmtpSender(
            server.host,
            server.port,
            sender=SENDER,
            username="mailer",
            password=SECRET,
            ssl=True,
            ssl_context=server.client_context,
        )
        sender.send(reset_mail())

        server.wait_for("alice@example.com")
        [caught] = server.caught
        assert (caught.tls, caught.login) == (True, "mailer")


def test_login_in_the_clear_to_a_loopback_relay_delivers() -> None:
    with MailCatcher(username="relay", password=SECRET) as server:
        sender = SmtpSender(
            "127.0.0.1",
            server.port,
            sender=SENDER,
            username="relay",
            password=SECRET,
            starttls=False,
        )
        sender.send(reset_mail())

        server.wait_for("alice@example.com")
        assert server.caught[0].login == "relay"


# -- the rule for credentials, and what a sender shows ---------------------------------------


@pytest.mark.parametrize(
    "host", ["mail.example.com", "10.0.0.25", "localhost.example.com", "2001:db8::25"]
)
def test_login_in_the_clear_is_refused_to_a_host_that_is_not_this_machine(host: str) -> None:
    with pytest.raises(ConfigError) as raised:
        SmtpSender(host, 25, sender=SENDER, username="u", password=SECRET, starttls=False)
    assert "starttls=True" in str(raised.value)
    assert SECRET not in str(raised.value)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.0.0.53", "::1", "[::1]"])
def test_login_in_the_clear_is_allowed_to_a_loopback_host(host: str) -> None:
    SmtpSender(host, 25, sender=SENDER, username="u", password=SECRET, starttls=False)


def test_login_without_tls_settings_is_fine_when_tls_is_on() -> None:
    SmtpSender("mail.example.com", sender=SENDER, username="u", password=SECRET)
    SmtpSender("mail.example.com", 465, sender=SENDER, username="u", password=SECRET, ssl=True)


def test_a_password_smtplib_cannot_send_is_refused_when_the_sender_is_made() -> None:
    with pytest.raises(ConfigError, match="only ASCII"):
        SmtpSender("mail.example.com", sender=SENDER, username="u", password="pässword")


def test_a_username_without_a_password_is_refused() -> None:
    with pytest.raises(ConfigError, match="both a username and a password"):
        SmtpSender("mail.example.com", sender=SENDER, username="u")


def test_the_repr_of_a_sender_never_shows_the_password() -> None:
    sender = SmtpSender("mail.example.com", sender=SENDER, username="u", password=SECRET)
    assert SECRET not in repr(sender)
    assert SECRET not in str(sender)
    assert "password='***'" in repr(sender)


def test_the_repr_of_a_message_leaves_out_its_text_and_html() -> None:
    assert LINK not in repr(reset_mail())
    assert "password_reset" in repr(reset_mail())


def test_every_sender_is_a_mail_sender() -> None:
    senders: list[object] = [
        SmtpSender("mail.example.com", sender=SENDER),
        ConsoleSender(),
        MemorySender(),
    ]
    assert all(isinstance(sender, MailSender) for sender in senders)


# -- header injection -----------------------------------------------------------------------


@pytest.mark.parametrize("newline", ["\r\n", "\n", "\r"], ids=["crlf", "lf", "cr"])
@pytest.mark.parametrize("where", ["to", "subject", "sender"])
def test_a_line_break_in_a_header_is_refused(where: str, newline: str) -> None:
    evil = f"x@example.com{newline}Bcc: everyone@example.com"
    message = MailMessage(
        to=evil if where == "to" else "alice@example.com",
        subject=evil if where == "subject" else "Hello",
        text="text",
    )
    with pytest.raises(ValueError, match="line break"):
        message.to_email(evil if where == "sender" else SENDER)


def test_a_sender_refuses_an_injected_header_before_connecting() -> None:
    # Nothing listens on the port: a connection attempt would raise OSError instead.
    sender = SmtpSender("127.0.0.1", free_port(), sender=SENDER, starttls=False)
    with pytest.raises(ValueError, match="line break"):
        sender.send(MailMessage(to="a@example.com\r\nBcc: b@example.com", subject="s", text="t"))


# -- development and test senders --------------------------------------------------------------


def test_the_console_sender_writes_headers_and_text() -> None:
    stream = io.StringIO()
    ConsoleSender(stream, sender=SENDER).send(reset_mail())
    written = stream.getvalue()
    assert written.startswith("----- mail: password_reset -----\n")
    assert f"From: {SENDER}\nTo: alice@example.com\n" in written
    assert "Subject: Reset your password for Example\n\n" in written
    assert LINK in written
    assert "<a href" not in written
    assert written.endswith("----- end -----\n")


def test_the_console_sender_writes_to_standard_error_by_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ConsoleSender().send(reset_mail())
    captured = capsys.readouterr()
    assert LINK in captured.err
    assert captured.out == ""


def test_the_console_sender_keeps_mails_from_many_threads_apart() -> None:
    stream = io.StringIO()
    sender = ConsoleSender(stream)

    def send_many(number: int) -> None:
        for index in range(25):
            to = f"user{number}-{index}@example.com"
            sender.send(MailMessage(to=to, subject="s", text=f"for {to}\n" * 5))

    threads = [threading.Thread(target=send_many, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    blocks = stream.getvalue().split("----- end -----\n")
    assert blocks.pop() == ""
    assert len(blocks) == 200
    for block in blocks:
        lines = block.splitlines()
        to = lines[1].removeprefix("To: ")
        assert lines[4:] == [f"for {to}"] * 5


def test_the_memory_sender_keeps_mails_in_order_across_threads() -> None:
    sender = MemorySender()

    def send_many(number: int) -> None:
        for index in range(50):
            sender.send(reset_mail(f"user{number}-{index}@example.com"))

    threads = [threading.Thread(target=send_many, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(sender.messages) == 400
    assert sender.last("USER3-49@example.com").to == "user3-49@example.com"
    sender.clear()
    assert sender.messages == []
    with pytest.raises(LookupError):
        sender.last()


# -- the outbox -----------------------------------------------------------------------------


class FirstAttemptFails:
    """Passes mail to a real SMTP sender; holds every attempt after the first until the
    test says the server is up."""

    def __init__(self, sender: MailSender) -> None:
        self.sender = sender
        self.attempts = 0
        self.first_failed = threading.Event()
        self.server_up = threading.Event()

    def send(self, message: MailMessage) -> None:
        self.attempts += 1
        if self.attempts == 1:
            try:
                self.sender.send(message)
            finally:
                self.first_failed.set()
        assert self.server_up.wait(30)
        self.sender.send(message)


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(
        f"{r.getMessage()} {r.exc_info} {r.exc_text}"
        for r in caplog.records
        if r.name == "authgate.mail"
    )


def _assert_nothing_of_the_mail_logged(logged: str) -> None:
    for secret in (LINK, "tok-9f8e7d6c5b4a", "Reset your password", "within 30 minutes"):
        assert secret not in logged
    assert "alice" not in logged
    assert SECRET not in logged


def test_the_outbox_retries_until_the_server_is_up(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="authgate.mail")
    port = free_port()  # nothing listens there yet
    sender = FirstAttemptFails(SmtpSender("127.0.0.1", port, sender=SENDER, starttls=False))
    outbox = Outbox(sender, retries=3, backoff=0.01)

    outbox.submit(reset_mail())
    assert sender.first_failed.wait(30)
    with MailCatcher(port=port) as server:
        sender.server_up.set()
        assert outbox.flush(30)
        mail = server.wait_for("alice@example.com")
    outbox.close()

    assert server.links(mail) == [LINK]
    assert sender.attempts == 2
    logged = _logged(caplog)
    assert "attempt 1 of 4" in logged
    assert "password_reset" in logged
    assert "example.com" in logged
    assert "ConnectionRefusedError" in logged
    _assert_nothing_of_the_mail_logged(logged)


class AlwaysRefused:
    """A server that refuses the recipient, quoting the address and the link back."""

    def __init__(self) -> None:
        self.attempts = 0

    def send(self, message: MailMessage) -> None:
        self.attempts += 1
        reply = f"<{message.to}> unknown; {message.subject}; {message.text}".encode()
        raise smtplib.SMTPRecipientsRefused({message.to: (550, reply)})


def test_the_outbox_gives_up_after_its_retries_and_logs_no_content(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="authgate.mail")
    sender = AlwaysRefused()
    outbox = Outbox(sender, retries=2, backoff=0)

    outbox.submit(reset_mail())
    assert outbox.flush(30)
    outbox.close()

    assert sender.attempts == 3
    logged = _logged(caplog)
    assert "not delivered after 3 attempts" in logged
    assert "SMTPRecipientsRefused" in logged
    _assert_nothing_of_the_mail_logged(logged)


def test_the_outbox_does_not_retry_a_malformed_message(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="authgate.mail")
    outbox = Outbox(SmtpSender("127.0.0.1", free_port(), sender=SENDER, starttls=False))

    outbox.submit(MailMessage(to="alice@example.com\r\nBcc: x@example.com", subject="s", text="t"))
    assert outbox.flush(30)
    outbox.close()

    logged = _logged(caplog)
    assert "refused before sending" in logged
    assert "ValueError" in logged
    assert "Bcc" not in logged
    assert "attempt" not in logged


class Held:
    """Holds each mail until released; records who got what, on which thread."""

    def __init__(self, hold: set[str]) -> None:
        self.hold = hold
        self.holding = threading.Event()
        self.release = threading.Event()
        self.sent: list[tuple[str, int]] = []
        self.changed = threading.Condition()

    def send(self, message: MailMessage) -> None:
        if message.to in self.hold:
            self.holding.set()
            assert self.release.wait(30)
        with self.changed:
            self.sent.append((message.to, threading.get_ident()))
            self.changed.notify_all()

    def wait_for(self, count: int) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: len(self.sent) >= count, 30)


def test_submit_returns_at_once_and_drops_mail_when_the_queue_is_full(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="authgate.mail")
    sender = Held({"held@example.com"})
    outbox = Outbox(sender, maxsize=2)

    outbox.submit(reset_mail("held@example.com"))
    assert sender.holding.wait(30)
    for number in range(4):
        outbox.submit(reset_mail(f"user{number}@example.com"))
    assert not outbox.flush(0.01)  # the first mail is still held
    sender.release.set()
    assert outbox.flush(30)
    outbox.close()

    assert [to for to, _ in sender.sent] == ["held@example.com", "user0@example.com"]
    logged = _logged(caplog)
    assert logged.count("outbox is full") == 3
    _assert_nothing_of_the_mail_logged(logged)


def test_submit_after_close_drops_the_mail_without_raising(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="authgate.mail")
    sender = MemorySender()
    outbox = Outbox(sender)
    outbox.submit(reset_mail("first@example.com"))
    assert outbox.close(30)

    outbox.submit(reset_mail("late@example.com"))
    assert [m.to for m in sender.messages] == ["first@example.com"]
    assert "outbox is closed" in _logged(caplog)


def test_a_sender_that_raises_anything_does_not_stop_the_worker() -> None:
    class Flaky:
        def __init__(self) -> None:
            self.delivered: list[str] = []

        def send(self, message: MailMessage) -> None:
            if message.to.startswith("bad"):
                raise RuntimeError("boom")
            self.delivered.append(message.to)

    sender = Flaky()
    outbox = Outbox(sender, retries=0)
    outbox.submit(reset_mail("bad@example.com"))
    outbox.submit(reset_mail("good@example.com"))
    assert outbox.flush(30)
    outbox.close()
    assert sender.delivered == ["good@example.com"]


def test_after_a_fork_the_outbox_starts_a_thread_of_its_own_and_leaves_the_parents_mail(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sender = Held({"parent-held@example.com"})
    outbox = Outbox(sender)
    outbox.submit(reset_mail("parent-held@example.com"))
    assert sender.holding.wait(30)
    outbox.submit(reset_mail("parent-queued@example.com"))  # behind the held one

    with monkeypatch.context() as patch:
        patch.setattr(os, "getpid", lambda: 4_000_000)  # as in a forked child
        outbox.submit(reset_mail("child@example.com"))
        assert outbox.flush(30)  # the child's own mail only: the parent's are still held
    [(to, child_thread)] = sender.sent
    assert to == "child@example.com"

    sender.release.set()
    assert sender.wait_for(3)
    delivered = {to: thread for to, thread in sender.sent}
    assert sorted(delivered) == [
        "child@example.com",
        "parent-held@example.com",
        "parent-queued@example.com",
    ]
    assert len(sender.sent) == 3  # each once
    assert delivered["parent-held@example.com"] == delivered["parent-queued@example.com"]
    assert delivered["parent-held@example.com"] != child_thread
    outbox.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_really_forked_child_delivers_its_own_mail() -> None:
    sender = MemorySender()
    outbox = Outbox(sender)
    outbox.submit(reset_mail("parent@example.com"))
    assert outbox.flush(30)

    read, write = os.pipe()
    with warnings.catch_warnings():  # Python 3.12+: fork() with threads running
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        try:
            outbox.submit(reset_mail("child@example.com"))
            report = [outbox.flush(30), [m.to for m in sender.messages]]
        except BaseException as err:
            report = [False, repr(err)]
        os.write(write, json.dumps(report).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        report = json.loads(pipe.read() or '[false, "the child wrote nothing"]')
    os.waitpid(pid, 0)
    outbox.close()

    assert report == [True, ["parent@example.com", "child@example.com"]]
    assert [m.to for m in sender.messages] == ["parent@example.com"]


def test_the_outbox_refuses_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="retries >= 0"):
        Outbox(MemorySender(), retries=-1)


# -- mail URLs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.com", ("mail.example.com", 587, True, False, None, 10.0)),
        ("smtp://mail.example.com:2525", ("mail.example.com", 2525, True, False, None, 10.0)),
        (
            "smtp://relay@localhost:25?starttls=false&timeout=3",
            None,  # a user without a password: refused, below
        ),
        (
            "smtp://user:pw@mail.example.com?timeout=2.5",
            ("mail.example.com", 587, True, False, "user", 2.5),
        ),
        (
            "smtp://127.0.0.1:1025?starttls=false",
            ("127.0.0.1", 1025, False, False, None, 10.0),
        ),
        ("SMTPS://u:pw@mail.example.com", ("mail.example.com", 465, False, True, "u", 10.0)),
        ("smtps://mail.example.com:2465", ("mail.example.com", 2465, False, True, None, 10.0)),
        ("smtp://[::1]:25?starttls=false", ("::1", 25, False, False, None, 10.0)),
    ],
)
def test_open_mailer_reads_smtp_urls(
    url: str, expected: tuple[str, int, bool, bool, str | None, float] | None
) -> None:
    if expected is None:
        with pytest.raises(ConfigError, match="no password"):
            open_mailer(url, SENDER)
        return
    sender = open_mailer(url, SENDER)
    assert isinstance(sender, SmtpSender)
    seen = (
        sender.host,
        sender.port,
        sender.starttls,
        sender.ssl,
        sender.username,
        sender.timeout,
    )
    assert seen == expected
    assert sender.sender == SENDER


def test_open_mailer_makes_console_and_memory_senders() -> None:
    console = open_mailer("console://", SENDER)
    assert isinstance(console, ConsoleSender)
    assert console.sender == SENDER
    assert isinstance(open_mailer("memory://", SENDER), MemorySender)


def test_a_percent_encoded_user_and_password_log_in_as_decoded() -> None:
    user, password = "mailer@example.com", "p@ss:w/rd%?#&= +"
    with MailCatcher(username=user, password=password) as server:
        assert "mailer%40example.com:p%40ss%3Aw%2Frd%25%3F%23%26%3D%20%2B@" in server.url
        sender = open_mailer(server.url, SENDER)
        sender.send(reset_mail())

        server.wait_for("alice@example.com")
        assert server.caught[0].login == user
        assert password not in repr(sender)
        assert "p%40ss" not in repr(sender)


@pytest.mark.parametrize(
    "url",
    [
        f"ftp://user:{SECRET}@mail.example.com",
        f"smtp://user:{SECRET}@mail.example.com?starttls=false",
        f"smtp://user:{SECRET}@mail.example.com:notaport",
        f"smtp://user:{SECRET}@mail.example.com?starttls=maybe",
        f"smtp://user:{SECRET}@mail.example.com?timeout=soon",
        f"smtp://user:{SECRET}@mail.example.com?tls=yes",
        f"smtps://user:{SECRET}@mail.example.com?starttls=true",
        f"smtp://user:{SECRET}@",
        f"smtp://:{SECRET}@mail.example.com",
        f"smtp://user:{SECRET}@host@mail.example.com:99999",
        f"smtp:user:{SECRET}@mail.example.com",
        f"console://user:{SECRET}@somewhere",
    ],
)
def test_a_wrong_mail_url_is_a_config_error_that_never_shows_the_password(url: str) -> None:
    with pytest.raises(ConfigError) as raised:
        open_mailer(url, SENDER)
    error = raised.value
    for shown in (str(error), repr(error), error.detail):
        assert SECRET not in shown
    assert error.__cause__ is None
    assert error.__suppress_context__ or error.__context__ is None


def test_an_unknown_scheme_says_which_urls_are_accepted() -> None:
    with pytest.raises(ConfigError) as raised:
        open_mailer("sendmail://localhost", SENDER)
    for accepted in ("console://", "memory://", "smtp://", "smtps://", "starttls="):
        assert accepted in str(raised.value)


# -- templates ------------------------------------------------------------------------------

VALUES = {
    "link": LINK,
    "username": "alice",
    "site": "Example",
    "minutes": 30,
    "email": "alice@example.com",
}


@pytest.mark.parametrize(
    "kind", ["password_reset", "verify_email", "account_exists", "password_changed"]
)
def test_every_built_in_template_renders_completely(kind: str) -> None:
    templates = MailTemplates()
    message = templates.render(kind, "alice@example.com", **VALUES)

    assert message.kind == kind
    assert message.to == "alice@example.com"
    assert templates.placeholders(kind) <= PLACEHOLDERS
    for part in (message.subject, message.text, message.html):
        assert "$" not in part
    assert "Example" in message.subject
    assert message.html.startswith("<p>")
    if "link" in templates.placeholders(kind):
        assert LINK in message.text
        assert LINK.replace("&", "&amp;") in message.html
    message.to_email(SENDER)  # a valid mail


def test_the_account_exists_mail_says_so_and_offers_a_reset_link() -> None:
    message = MailTemplates().render("account_exists", "alice@example.com", **VALUES)
    assert "already has an account" in message.text
    assert LINK in message.text


def test_values_are_escaped_in_html_and_left_as_they_are_in_text() -> None:
    templates = MailTemplates(defaults={"site": "Tom & Jerry's"})
    message = templates.render(
        "password_reset",
        "alice@example.com",
        link='https://example.com/r?a=1&b="2"',
        username="<script>alert(1)</script>",
        minutes=30,
    )
    assert "<script>alert(1)</script>" in message.text
    assert 'https://example.com/r?a=1&b="2"' in message.text
    assert "<script>" not in message.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in message.html
    assert 'href="https://example.com/r?a=1&amp;b=&quot;2&quot;"' in message.html
    assert "Tom &amp; Jerry&#x27;s" in message.html
    assert message.subject == "Reset your password for Tom & Jerry's"


def test_a_template_directory_replaces_the_built_in_texts_file_by_file(tmp_path: Path) -> None:
    (tmp_path / "password_reset.txt").write_text("Hi $username, reset: $link\n")
    (tmp_path / "verify_email.subject.txt").write_text("Welcome to $site, $username!\n")
    (tmp_path / "welcome.subject.txt").write_text("Welcome\n")
    (tmp_path / "welcome.txt").write_text("Glad to have you, $username.\n")
    templates = MailTemplates(tmp_path, defaults={"site": "Example"})

    reset = templates.render("password_reset", "a@example.com", **VALUES)
    assert reset.text == f"Hi alice, reset: {LINK}\n"
    assert reset.subject == "Reset your password for Example"  # built in
    assert 'href="' in reset.html  # built in
    verify = templates.render("verify_email", "a@example.com", **VALUES)
    assert verify.subject == "Welcome to Example, alice!"
    welcome = templates.render("welcome", "a@example.com", username="bob")
    assert (welcome.subject, welcome.text, welcome.html) == (
        "Welcome",
        "Glad to have you, bob.\n",
        "",
    )
    assert "welcome" in templates.kinds


def test_overrides_win_over_the_directory_and_the_built_in_texts(tmp_path: Path) -> None:
    (tmp_path / "password_reset.txt").write_text("from the directory $link\n")
    templates = MailTemplates(
        tmp_path, overrides={"password_reset": ("Reset at $site", "Go: $link\n", "")}
    )
    message = templates.render("password_reset", "a@example.com", link=LINK, site="Example")
    assert (message.subject, message.text, message.html) == (
        "Reset at Example",
        f"Go: {LINK}\n",
        "",
    )
    assert templates.placeholders("password_reset") == {"site", "link"}


@pytest.mark.parametrize(
    ("name", "content", "complaint"),
    [
        ("password_reset.txt", "Reset with $token\n", "$token, which authgate does not fill"),
        ("password_reset.html", "<a href='${url}'>x</a>", "$url, which authgate does not fill"),
        ("password_reset.txt", "Pay $5 now: $link\n", "write `$$` for a dollar sign"),
        ("password_reset.subject.txt", "Reset\nBcc: x", "a subject is one line"),
        ("welcome.txt", "Hi $username\n", "no welcome.subject.txt"),
        ("password_reset.txt", "   \n", "is empty"),
        ("password_reset.subject.txt", "\n", "is empty"),
    ],
)
def test_a_wrong_template_file_is_a_config_error_when_loaded(
    tmp_path: Path, name: str, content: str, complaint: str
) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(ConfigError) as raised:
        MailTemplates(tmp_path)
    assert complaint in str(raised.value)


def test_a_wrong_override_is_a_config_error_when_loaded() -> None:
    with pytest.raises(ConfigError, match=r"\$secret, which authgate does not fill"):
        MailTemplates(overrides={"password_reset": ("Reset", "$secret", "")})
    with pytest.raises(ConfigError, match=r"not \(subject, text, html\)"):
        MailTemplates(overrides={"password_reset": ("Reset", "text")})  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="which no template can use"):
        MailTemplates(defaults={"token": "x"})


def test_a_missing_template_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        MailTemplates(tmp_path / "nowhere")


def test_rendering_says_what_is_missing_or_unknown() -> None:
    templates = MailTemplates()
    with pytest.raises(ConfigError, match=r"uses \$link, \$minutes, \$site, \$username"):
        templates.render("password_reset", "a@example.com")
    with pytest.raises(TypeError, match=r"\$token"):
        templates.render("password_reset", "a@example.com", token="x", **VALUES)
    with pytest.raises(ValueError, match="no mail template for 'welcome'"):
        templates.render("welcome", "a@example.com", **VALUES)


def test_email_defaults_to_the_recipient() -> None:
    message = MailTemplates().render(
        "verify_email", "bob@example.com", link=LINK, username="bob", site="S", minutes=5
    )
    assert "that bob@example.com is your address" in message.text


# -- the catcher itself ---------------------------------------------------------------------


def test_the_catcher_hands_out_each_mail_once_and_says_what_it_got(catcher: MailCatcher) -> None:
    sender = open_mailer(catcher.url, SENDER)
    sender.send(reset_mail())
    sender.send(reset_mail())
    assert catcher.wait_for("alice@example.com") is not catcher.wait_for("ALICE@example.com")
    with pytest.raises(TimeoutError, match="received mail for alice@example.com"):
        catcher.wait_for("alice@example.com", timeout=0.05)
    assert len(catcher.messages) == 2


def test_links_stop_at_punctuation_and_brackets() -> None:
    message = MailMessage(
        to="a@example.com",
        subject="s",
        text="See https://a.example/x?y=1. Or (https://b.example/z), <http://c.example/>!\n",
    ).to_email(SENDER)
    assert MailCatcher.links(message) == [
        "https://a.example/x?y=1",
        "https://b.example/z",
        "http://c.example/",
    ]


def test_the_catcher_without_aiosmtpd_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "aiosmtpd.controller", None)
    with pytest.raises(ImportError, match=r"authgate\[dev\]"):
        MailCatcher()
