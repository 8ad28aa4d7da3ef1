"""Mail that really goes out: password-reset links, address checks, sign-up notices.

A `MailMessage` is what to send; a `MailSender` sends it, blocking until the server took
it (`SmtpSender` over SMTP with STARTTLS or implicit TLS, `ConsoleSender` for
development, `MemorySender` for tests); an `Outbox` takes delivery off the request path,
with retries, on a worker thread that survives a pre-forking server.  `open_mailer`
builds a sender from a URL, and `MailTemplates` renders the messages authgate sends.

What a mail says is never logged: a message's subject, body and links carry the
one-time tokens that stand for a password.  The outbox's log lines name the kind of
message, the recipient's domain and the class of the error, nothing more.
"""

from __future__ import annotations

import collections
import html
import ipaddress
import logging
import os
import smtplib
import string
import sys
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path
from ssl import SSLContext, create_default_context
from typing import IO, Final, Protocol, runtime_checkable
from urllib.parse import parse_qsl, unquote, urlsplit

from .errors import ConfigError

__all__ = [
    "PLACEHOLDERS",
    "ConsoleSender",
    "MailMessage",
    "MailSender",
    "MailTemplates",
    "MemorySender",
    "Outbox",
    "SmtpSender",
    "open_mailer",
]

_log = logging.getLogger("authgate.mail")

#: The values a mail template may use, as ``$name``: authgate fills these and no others.
PLACEHOLDERS: Final = frozenset({"link", "username", "site", "minutes", "email"})

_ACCEPTED_URLS = (
    "console://, memory://, smtp://[user:password@]host[:port][?starttls=true|false"
    "&timeout=10] (port 587, STARTTLS by default) or smtps://[user:password@]host[:port]"
    "[?timeout=10] (port 465, TLS from the first byte)"
)


# -- the message ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MailMessage:
    """One mail to send: its recipient, subject, plain text, optional HTML and kind.

    `kind` names what the mail is for ("password_reset", "verify_email",
    "account_exists", "password_changed"); it is what the outbox logs instead of the
    mail's content.  The text and HTML are left out of the repr: they carry links that
    stand for a password.
    """

    to: str
    subject: str
    text: str = field(repr=False)
    html: str = field(default="", repr=False)
    kind: str = ""

    def to_email(self, sender: str) -> EmailMessage:
        """The message as it goes on the wire, from `sender`: text/plain, or
        multipart/alternative with the HTML after the text, with Date and Message-ID.

        Raises:
            ValueError: the recipient, subject or sender holds a line break, which would
                let whoever chose it write headers of their own (header injection).
        """
        for name, value in (("recipient", self.to), ("subject", self.subject), ("sender", sender)):
            if "\r" in value or "\n" in value:
                raise ValueError(
                    f"the mail's {name} holds a line break, which would start a header of "
                    "its own: refuse the address or subject where it came in"
                )
        email = EmailMessage()
        email["From"] = sender
        email["To"] = self.to
        email["Subject"] = self.subject
        email["Date"] = formatdate(usegmt=True)
        # The sender's domain, not socket.getfqdn(), which may wait on DNS.
        domain = parseaddr(sender)[1].rpartition("@")[2] or "authgate.invalid"
        email["Message-ID"] = make_msgid(domain=domain)
        # RFC 3834: vacation responders and the like do not answer this mail.
        email["Auto-Submitted"] = "auto-generated"
        email.set_content(self.text)
        if self.html:
            email.add_alternative(self.html, subtype="html")
        return email


# -- senders --------------------------------------------------------------------------------


@runtime_checkable
class MailSender(Protocol):
    """Something that delivers a mail, blocking until it is handed over."""

    def send(self, message: MailMessage) -> None:
        """Deliver `message`; return once the next hop accepted it, raise if it did not."""


def _is_loopback(host: str) -> bool:
    """Whether `host` names this machine itself: ``localhost`` or a loopback address."""
    if host.casefold().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class SmtpSender:
    """Delivers each mail over a new connection to an SMTP server (the submission port
    with STARTTLS, or implicit TLS), logging in when given a username.

    The rule for credentials: authgate logs in only over TLS (STARTTLS or implicit),
    except to a loopback host (a local relay), where nothing crosses the network.  A
    sender that would send a password in the clear to another host is refused when it is
    made.  With ``starttls=True`` a server that does not offer STARTTLS is an error,
    never a silent fall-back to plaintext.  ``ssl=True`` means TLS from the first byte
    (port 465); `starttls` does not apply then.  Certificates are checked with the
    system's trust store unless `ssl_context` says otherwise.

    `send` raises what `smtplib` raises (`smtplib.SMTPException`, `OSError`); neither
    holds the password.
    """

    __slots__ = (
        "_context",
        "_password",
        "host",
        "port",
        "sender",
        "ssl",
        "starttls",
        "timeout",
        "username",
    )

    def __init__(
        self,
        host: str,
        port: int = 587,
        *,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = True,
        ssl: bool = False,
        timeout: float = 10.0,
        ssl_context: SSLContext | None = None,
    ) -> None:
        if (username is None) != (password is None):
            raise ConfigError(
                "SmtpSender needs both a username and a password to log in, or neither"
            )
        if not (username or "").isascii() or not (password or "").isascii():
            raise ConfigError(
                "SmtpSender logs in with smtplib, which sends only ASCII user names and "
                "passwords: choose an ASCII password for the mail account"
            )
        if username is not None and not (ssl or starttls) and not _is_loopback(host):
            raise ConfigError(
                f"refusing to send SMTP credentials in the clear to {host}: use "
                "starttls=True (port 587) or ssl=True (port 465); plaintext login is "
                "allowed only to a loopback host"
            )
        self.host = host
        self.port = port
        self.sender = sender
        self.username = username
        self._password = password
        self.starttls = starttls and not ssl
        self.ssl = ssl
        self.timeout = timeout
        self._context = ssl_context

    def __repr__(self) -> str:
        password = "'***'" if self._password is not None else "None"
        return (
            f"SmtpSender({self.host!r}, {self.port}, sender={self.sender!r}, "
            f"username={self.username!r}, password={password}, starttls={self.starttls}, "
            f"ssl={self.ssl}, timeout={self.timeout})"
        )

    def send(self, message: MailMessage) -> None:
        """Connect, secure the connection, log in if configured, hand over `message`."""
        email = message.to_email(self.sender)
        client: smtplib.SMTP
        if self.ssl:
            client = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=self._tls()
            )
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with client:
            if self.starttls:
                client.starttls(context=self._tls())
            if self.username is not None and self._password is not None:
                client.login(self.username, self._password)
            client.send_message(email, to_addrs=[message.to])

    def _tls(self) -> SSLContext:
        # Made on first use: loading the system's trust store takes a few milliseconds.
        if self._context is None:
            self._context = create_default_context()
        return self._context


class ConsoleSender:
    """Writes each mail (its headers and text) to a stream, standard error by default:
    for development, where a reset link in the terminal is what one wants.  Never use
    it in production: the links it writes stand for passwords."""

    __slots__ = ("_lock", "sender", "stream")

    def __init__(self, stream: IO[str] | None = None, *, sender: str = "") -> None:
        self.stream = stream
        self.sender = sender
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ConsoleSender(sender={self.sender!r})"

    def send(self, message: MailMessage) -> None:
        """Write `message` in one piece, so that mails sent at once do not interleave."""
        headers = [f"From: {self.sender}"] if self.sender else []
        headers += [f"To: {message.to}", f"Subject: {message.subject}"]
        title = f"mail: {message.kind}" if message.kind else "mail"
        text = message.text if message.text.endswith("\n") else message.text + "\n"
        block = f"----- {title} -----\n" + "\n".join(headers) + f"\n\n{text}----- end -----\n"
        with self._lock:
            stream = self.stream if self.stream is not None else sys.stderr
            stream.write(block)
            stream.flush()


class MemorySender:
    """Keeps every mail it is given, in order: for tests of code that sends mail."""

    __slots__ = ("_lock", "_messages")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[MailMessage] = []

    def __repr__(self) -> str:
        return f"MemorySender({len(self._messages)} messages)"

    def send(self, message: MailMessage) -> None:
        """Keep `message`."""
        with self._lock:
            self._messages.append(message)

    @property
    def messages(self) -> list[MailMessage]:
        """The mails sent so far, oldest first (a copy: `clear` empties the sender)."""
        with self._lock:
            return list(self._messages)

    def last(self, to: str | None = None) -> MailMessage:
        """The newest mail (to `to`, if given); LookupError when there is none."""
        with self._lock:
            for message in reversed(self._messages):
                if to is None or message.to.casefold() == to.casefold():
                    return message
        raise LookupError(f"no mail was sent{f' to {to}' if to else ''}")

    def clear(self) -> None:
        """Forget the mails sent so far."""
        with self._lock:
            self._messages.clear()


# -- the outbox -----------------------------------------------------------------------------


def _domain(address: str) -> str:
    """The recipient's domain, for a log line: what may be told of a recipient.  Only
    host-name characters are kept, so that an address cannot write into the log."""
    domain = str(address).rpartition("@")[2].casefold()
    kept = "".join(c for c in domain if c.isascii() and (c.isalnum() or c in ".-"))
    return kept or "?"


def _kind(message: MailMessage) -> str:
    """The mail's kind, for a log line, with only the characters a kind is made of."""
    kind = str(getattr(message, "kind", ""))
    kept = "".join(c for c in kind if c.isascii() and (c.isalnum() or c in "_-"))
    return kept or "unnamed"


class _Line:
    """An outbox's queue, counter and worker in one process: a forked child makes a
    line of its own instead of using the parent's, whose thread it does not have."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        # (when due, the mail): appended by `submit` without waking the worker
        self.waiting: collections.deque[tuple[float, MailMessage]] = collections.deque()
        self.wake = threading.Event()  # set by `flush` and `close` (and with no hold)
        self.hurry = False  # `flush` asks for everything now, due or not
        self.lock = threading.Lock()
        self.idle = threading.Condition(self.lock)
        self.pending = 0  # queued or being delivered, under `lock`
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None


class Outbox:
    """Delivers mail off the request path: `submit` queues a mail and returns at once;
    a daemon thread hands it to `sender`, trying again after a failure.

    A failed attempt is retried up to `retries` more times, after `backoff`, then twice
    that, and so on.  A `ValueError` (a malformed message) is not retried.  Failures are
    logged on the ``authgate.mail`` logger with the mail's kind, the recipient's domain
    and the exception's class: never its subject, text, link or address.

    At most `maxsize` mails wait; one more is dropped with a log line, and `submit` still
    returns as usual, so a caller behaves the same whatever happened to the mail.

    A mail waits `hold` seconds before the thread takes it, and `submit` never wakes the
    thread (it looks for due mail every quarter of a second): the work of delivering a
    mail, which contends for the interpreter with the request that queued it, never
    overlaps that request, so an answer takes the same time whether it queued a mail or
    not (``benchmarks/accounts.py`` measures it).  `flush` delivers at once.

    The thread starts with the first `submit`.  In a forked child (a pre-forking server's
    worker) the outbox starts a thread of its own and leaves the mails queued before the
    fork to the parent, which delivers them: nothing is sent twice.  Call `close` at
    shutdown: mails still queued when the process exits are lost.
    """

    __slots__ = (
        "__weakref__",
        "_closed",
        "_line",
        "_sender",
        "backoff",
        "hold",
        "maxsize",
        "retries",
    )

    def __init__(
        self,
        sender: MailSender,
        *,
        retries: int = 3,
        backoff: float = 0.5,
        maxsize: int = 1000,
        hold: float = 1.0,
    ) -> None:
        if retries < 0 or backoff < 0 or maxsize < 1 or hold < 0:
            raise ValueError(
                "Outbox needs retries >= 0, backoff >= 0, hold >= 0 (seconds) and maxsize >= 1"
            )
        self._sender = sender
        self.retries = retries
        self.backoff = backoff
        self.hold = hold
        self.maxsize = maxsize
        self._closed = False
        self._line = _Line(os.getpid())
        if hasattr(os, "register_at_fork"):
            # In the child, before any of its threads can submit; the pid check in
            # `_running_line` covers the forks this hook does not see.
            ref = weakref.ref(self)
            os.register_at_fork(after_in_child=lambda: _adopt(ref))

    def __repr__(self) -> str:
        return f"Outbox({self._sender!r}, retries={self.retries}, backoff={self.backoff})"

    def submit(self, message: MailMessage) -> None:
        """Queue `message` for delivery; never blocks, never raises."""
        try:
            if self._closed:
                _log.warning(
                    "mail outbox is closed: dropped a %s mail to a recipient at %s",
                    _kind(message),
                    _domain(message.to),
                )
                return
            line = self._running_line()
            with line.lock:
                full = line.pending >= self.maxsize
                if not full:
                    line.pending += 1
            if full:
                _log.error(
                    "mail outbox is full (%d waiting): dropped a %s mail to a recipient at %s",
                    self.maxsize,
                    _kind(message),
                    _domain(message.to),
                )
                return
            line.waiting.append((time.monotonic() + self.hold, message))
            if not self.hold:
                line.wake.set()
        except Exception as err:  # a caller's request must not fail for its mail
            _log.error(
                "mail outbox could not take a %s mail (%s)", _kind(message), type(err).__name__
            )

    def flush(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds until every submitted mail is delivered or given
        up on; whether that happened in time."""
        line = self._running_line() if self._line.pending else self._line
        line.hurry = True
        line.wake.set()
        try:
            with line.idle:
                return line.idle.wait_for(lambda: line.pending == 0, timeout)
        finally:
            line.hurry = False

    def close(self, timeout: float = 5.0) -> bool:
        """Deliver what is queued (waiting up to `timeout` seconds), then stop the
        thread; whether everything went out.  Later mails are dropped with a log line."""
        if self._line.pid != os.getpid():
            self._adopt()
        done = self.flush(timeout)
        self._closed = True
        line = self._line
        line.stop.set()
        with line.lock:
            thread, line.thread = line.thread, None
        if thread is not None:
            line.wake.set()
            thread.join(timeout)
        return done

    def _running_line(self) -> _Line:
        """This process's line, its worker thread running."""
        if self._line.pid != os.getpid():
            self._adopt()
        line = self._line
        with line.lock:
            if line.thread is None:
                line.thread = threading.Thread(
                    target=self._work, args=(line,), name="authgate-mail-outbox", daemon=True
                )
                line.thread.start()
        return line

    def _adopt(self) -> None:
        """Start afresh in a forked child: new queue, locks (the parent's may have been
        held at the fork) and no thread yet."""
        self._line = _Line(os.getpid())

    def _work(self, line: _Line) -> None:
        while True:
            line.wake.wait(min(self.hold, 0.25) or 1.0)
            line.wake.clear()
            now = time.monotonic()
            while line.waiting and (line.hurry or line.stop.is_set() or line.waiting[0][0] <= now):
                _, message = line.waiting.popleft()
                try:
                    self._deliver(message, line.stop)
                finally:
                    with line.idle:
                        line.pending -= 1
                        line.idle.notify_all()
            if line.stop.is_set():
                return

    def _deliver(self, message: MailMessage, stop: threading.Event) -> None:
        attempts = self.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                self._sender.send(message)
            except ValueError as err:  # the message itself is wrong: it fails every time
                _log.error(
                    "mail refused before sending: a %s mail to a recipient at %s (%s)",
                    _kind(message),
                    _domain(message.to),
                    type(err).__name__,
                )
                return
            except Exception as err:  # whatever the sender raises, the thread goes on
                if attempt == attempts:
                    _log.error(
                        "mail not delivered after %d attempts: a %s mail to a recipient at %s (%s)",
                        attempts,
                        _kind(message),
                        _domain(message.to),
                        type(err).__name__,
                    )
                    return
                delay = self.backoff * 2 ** (attempt - 1)
                _log.warning(
                    "mail delivery failed (attempt %d of %d, next in %.2f s): a %s mail to "
                    "a recipient at %s (%s)",
                    attempt,
                    attempts,
                    delay,
                    _kind(message),
                    _domain(message.to),
                    type(err).__name__,
                )
                if stop.wait(delay):
                    _log.error(
                        "mail outbox closed while retrying: gave up a %s mail to a recipient at %s",
                        _kind(message),
                        _domain(message.to),
                    )
                    return
            else:
                return


def _adopt(ref: weakref.ref[Outbox]) -> None:
    outbox = ref()
    if outbox is not None:
        outbox._adopt()


# -- senders from URLs ---------------------------------------------------------------------


def _redacted(url: str) -> str:
    """`url` to quote in an error message: its user and password left out (some
    services take a secret token for the user name as well)."""
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    scheme, sep, _ = head.partition("://")
    return f"{scheme}://***@{tail}" if sep else f"***@{tail}"


def _flag(value: str, name: str, url: str) -> bool:
    if value.casefold() in {"true", "1", "yes", "on"}:
        return True
    if value.casefold() in {"false", "0", "no", "off"}:
        return False
    raise ConfigError(f"{name}={value!r} in {_redacted(url)}: write {name}=true or {name}=false")


def open_mailer(url: str, sender: str) -> MailSender:
    """A mail sender for `url`, sending from `sender` (``"Example <no-reply@example.com>"``).

    ``console://`` writes mails to standard error; ``memory://`` keeps them (tests);
    ``smtp://user:password@host:587?starttls=true&timeout=10`` submits them with
    STARTTLS (port 587 by default; ``starttls=false`` for a local relay);
    ``smtps://user:password@host:465`` with TLS from the first byte (port 465 by
    default).  The user and password are percent-decoded: write ``%40`` for ``@``.

    Raises:
        ConfigError: the URL is not one of these, or would log in without TLS to a host
            that is not this machine.  The message never holds the password.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.casefold()
    if scheme in {"console", "memory"}:
        if parts.netloc or parts.path.strip("/") or parts.query:
            raise ConfigError(f"{_redacted(url)}: write {scheme}:// alone")
        return ConsoleSender(sender=sender) if scheme == "console" else MemorySender()
    if scheme not in {"smtp", "smtps"}:
        raise ConfigError(f"cannot send mail to {_redacted(url)}: use {_ACCEPTED_URLS}")
    implicit = scheme == "smtps"
    try:
        host, port = parts.hostname, parts.port
        # unquote after splitting: an encoded "@" or ":" is part of the user or password
        username = unquote(parts.username) if parts.username is not None else None
        password = unquote(parts.password) if parts.password is not None else None
    except ValueError:
        # not `from err`: urllib's message may quote the URL, password included
        raise ConfigError(
            f"{_redacted(url)} is not a valid mail URL: use {_ACCEPTED_URLS}"
        ) from None
    if not host:
        raise ConfigError(f"{_redacted(url)} names no host: use {_ACCEPTED_URLS}")
    if password is not None and not username:
        raise ConfigError(
            f"{_redacted(url)} has a password but no user name: write {scheme}://user:password@host"
        )
    if username and password is None:
        raise ConfigError(
            f"{_redacted(url)} has a user name but no password: write "
            f"{scheme}://user:password@host (percent-encode @, : and / in them)"
        )
    if not username:
        username = None
    starttls, timeout = not implicit, 10.0
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name == "starttls" and not implicit:
            starttls = _flag(value, name, url)
        elif name == "timeout":
            try:
                timeout = float(value)
            except ValueError:
                raise ConfigError(
                    f"timeout={value!r} in {_redacted(url)}: write the seconds, timeout=10"
                ) from None
        else:
            accepted = "timeout" if implicit else "starttls and timeout"
            raise ConfigError(
                f"{_redacted(url)} sets {name!r}, which a {scheme}:// URL does not take: "
                f"it takes {accepted}"
            )
    return SmtpSender(
        host,
        port if port is not None else (465 if implicit else 587),
        sender=sender,
        username=username,
        password=password,
        starttls=starttls,
        ssl=implicit,
        timeout=timeout,
    )


# -- templates ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Template:
    """The three parts of one kind of mail, and the placeholders they use."""

    subject: str
    text: str
    html: str
    uses: frozenset[str]


_DEFAULTS: Final[dict[str, tuple[str, str, str]]] = {
    "password_reset": (
        "Reset your password for $site",
        "Hello $username,\n\n"
        "Someone, we hope you, asked to reset the password of your account at $site.\n"
        "To choose a new password, open this link within $minutes minutes:\n\n"
        "$link\n\n"
        "If you did not ask for this, ignore this mail: your password stays as it is.\n",
        "<p>Hello $username,</p>\n"
        "<p>Someone, we hope you, asked to reset the password of your account at $site.\n"
        "To choose a new password, open this link within $minutes minutes:</p>\n"
        '<p><a href="$link">Reset your password</a></p>\n'
        "<p>If you did not ask for this, ignore this mail: your password stays as it is.</p>\n",
    ),
    "verify_email": (
        "Confirm your email address for $site",
        "Hello $username,\n\n"
        "To confirm that $email is your address at $site, open this link within\n"
        "$minutes minutes:\n\n"
        "$link\n\n"
        "If you did not sign up at $site, ignore this mail.\n",
        "<p>Hello $username,</p>\n"
        "<p>To confirm that $email is your address at $site, open this link within\n"
        "$minutes minutes:</p>\n"
        '<p><a href="$link">Confirm your address</a></p>\n'
        "<p>If you did not sign up at $site, ignore this mail.</p>\n",
    ),
    "account_exists": (
        "About signing up at $site",
        "Hello,\n\n"
        "Someone, perhaps you, tried to sign up at $site with $email. That address\n"
        "already has an account, so no new one was made.\n\n"
        "If it was you, sign in with your account. If you forgot its password,\n"
        "choose a new one with this link within $minutes minutes:\n\n"
        "$link\n\n"
        "If it was not you, ignore this mail: nothing has changed.\n",
        "<p>Hello,</p>\n"
        "<p>Someone, perhaps you, tried to sign up at $site with $email. That address\n"
        "already has an account, so no new one was made.</p>\n"
        "<p>If it was you, sign in with your account. If you forgot its password,\n"
        "choose a new one with this link within $minutes minutes:</p>\n"
        '<p><a href="$link">Reset your password</a></p>\n'
        "<p>If it was not you, ignore this mail: nothing has changed.</p>\n",
    ),
    "password_changed": (
        "Your password at $site was changed",
        "Hello $username,\n\n"
        "The password of your account at $site was just changed.\n\n"
        "If you did this, there is nothing more to do. If you did not, reset your\n"
        "password at once and tell the people who run $site.\n",
        "<p>Hello $username,</p>\n"
        "<p>The password of your account at $site was just changed.</p>\n"
        "<p>If you did this, there is nothing more to do. If you did not, reset your\n"
        "password at once and tell the people who run $site.</p>\n",
    ),
}

_SUFFIXES: Final = {"subject": ".subject.txt", "text": ".txt", "html": ".html"}


def _placeholders(template: str, where: str) -> frozenset[str]:
    """The ``$names`` `template` uses; ConfigError for an unknown one or a stray ``$``."""
    found = set()
    for match in string.Template.pattern.finditer(template):
        if match.group("invalid") is not None:
            line = template.count("\n", 0, match.start("invalid")) + 1
            raise ConfigError(
                f"{where}, line {line}: a `$` that starts no placeholder; write `$$` for a "
                f"dollar sign, or one of {_names(PLACEHOLDERS)}"
            )
        name = match.group("named") or match.group("braced")
        if name:
            found.add(name)
    unknown = found - PLACEHOLDERS
    if unknown:
        raise ConfigError(
            f"{where} uses {_names(unknown)}, which authgate does not fill: a mail template "
            f"may use {_names(PLACEHOLDERS)}"
        )
    return frozenset(found)


def _names(names: frozenset[str] | set[str]) -> str:
    return ", ".join(f"${name}" for name in sorted(names))


def _template(kind: str, parts: tuple[str, str, str], where: list[str]) -> _Template:
    subject, text, html_ = parts
    subject = subject.strip()
    if "\n" in subject or "\r" in subject:
        raise ConfigError(f"{where[0]}: a subject is one line; this one has several")
    if not subject:
        raise ConfigError(f"{where[0]}: the subject of a {kind} mail is empty; write one")
    if not text.strip():
        raise ConfigError(f"{where[1]}: the text of a {kind} mail is empty; write one")
    uses = frozenset().union(
        *(_placeholders(part, at) for part, at in zip((subject, text, html_), where, strict=True))
    )
    return _Template(subject, text, html_, uses)


class MailTemplates:
    """The subject, text and HTML of each kind of mail authgate sends, written with
    `string.Template` placeholders (``$link``, ``$username``, ``$site``, ``$minutes``,
    ``$email``).

    Built-in texts cover "password_reset", "verify_email", "account_exists" (someone
    tried to sign up with an address that has an account: the mail says so and offers a
    reset link) and "password_changed".  Replace them file by file from `directory`
    (``<kind>.subject.txt``, ``<kind>.txt``, ``<kind>.html``; a file that is absent
    keeps the built-in one, and a kind with files of its own is added), or whole from
    `overrides` (``{kind: (subject, text, html)}``, ``html=""`` for a text-only mail),
    which wins over both.  `defaults` gives values once for every mail (``site``).

    Every template is checked when loaded: a placeholder authgate does not fill, or a
    ``$`` that starts none, is a `ConfigError` then, not a broken mail later.

    Raises:
        ConfigError: `directory` is not a directory, or a template is wrong as above.
    """

    __slots__ = ("_defaults", "_templates")

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        overrides: Mapping[str, tuple[str, str, str]] | None = None,
        defaults: Mapping[str, object] | None = None,
    ) -> None:
        parts: dict[str, list[str]] = {kind: list(texts) for kind, texts in _DEFAULTS.items()}
        where: dict[str, list[str]] = {
            kind: [f"the built-in {kind} {part}" for part in _SUFFIXES] for kind in parts
        }
        if directory is not None:
            self._read(Path(directory), parts, where)
        for kind, texts in (overrides or {}).items():
            if len(texts) != 3:
                raise ConfigError(
                    f"overrides[{kind!r}] is not (subject, text, html): write "
                    '("Subject", "Text with $link", "") for a text-only mail'
                )
            parts[kind] = list(texts)
            where[kind] = [f"overrides[{kind!r}] {part}" for part in _SUFFIXES]
        self._templates: dict[str, _Template] = {}
        for kind, (subject, text, html_) in parts.items():
            self._templates[kind] = _template(kind, (subject, text, html_), where[kind])
        self._defaults = {name: str(value) for name, value in (defaults or {}).items()}
        unknown = self._defaults.keys() - PLACEHOLDERS
        if unknown:
            raise ConfigError(
                f"defaults names {_names(set(unknown))}, which no template can use: use "
                f"{_names(PLACEHOLDERS)}"
            )

    @staticmethod
    def _read(directory: Path, parts: dict[str, list[str]], where: dict[str, list[str]]) -> None:
        if not directory.is_dir():
            raise ConfigError(
                f"the mail template directory {directory} does not exist: make it, or "
                "leave the directory out to use the built-in texts"
            )
        for path in sorted(directory.iterdir()):
            name = path.name
            # ".subject.txt" is tried before ".txt": x.subject.txt is x's subject
            for index, suffix in enumerate(_SUFFIXES.values()):
                if name.endswith(suffix) and len(name) > len(suffix):
                    kind = name[: -len(suffix)]
                    if kind not in parts:
                        parts[kind] = ["", "", ""]
                        where[kind] = [str(directory / f"{kind}{s}") for s in _SUFFIXES.values()]
                    parts[kind][index] = path.read_text(encoding="utf-8")
                    where[kind][index] = str(path)
                    break
        for kind in parts.keys() - _DEFAULTS.keys():
            for suffix in (_SUFFIXES["subject"], _SUFFIXES["text"]):
                if not (directory / f"{kind}{suffix}").is_file():
                    raise ConfigError(
                        f"{directory} holds templates for a {kind} mail but no {kind}{suffix}: "
                        "a mail authgate does not know needs a subject and a text of its own"
                    )

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds of mail these templates render, sorted."""
        return tuple(sorted(self._templates))

    def placeholders(self, kind: str) -> frozenset[str]:
        """The placeholders the `kind` mail uses: the values `render` needs."""
        return self._get(kind).uses

    def render(self, kind: str, to: str, **values: object) -> MailMessage:
        """The `kind` mail to `to`, its placeholders filled from `values` (``$email``
        is `to` unless given).  Values are HTML-escaped in the HTML part only.

        Raises:
            ValueError: no template for `kind`.
            TypeError: a value that no template can use.
            ConfigError: the template uses a placeholder that has no value here.
        """
        template = self._get(kind)
        unknown = values.keys() - PLACEHOLDERS
        if unknown:
            raise TypeError(
                f"render() got {_names(set(unknown))}, which no mail template uses: pass "
                f"{', '.join(sorted(PLACEHOLDERS))}"
            )
        filled = {"email": to, **self._defaults, **{k: str(v) for k, v in values.items()}}
        missing = template.uses - filled.keys()
        if missing:
            raise ConfigError(
                f"the {kind} mail template uses {_names(set(missing))}, which has no value: "
                "pass it to render() or in MailTemplates(defaults=...), or take it out of "
                "the template"
            )
        escaped = {name: html.escape(value, quote=True) for name, value in filled.items()}
        return MailMessage(
            to=to,
            subject=string.Template(template.subject).substitute(filled),
            text=string.Template(template.text).substitute(filled),
            html=string.Template(template.html).substitute(escaped) if template.html else "",
            kind=kind,
        )

    def _get(self, kind: str) -> _Template:
        try:
            return self._templates[kind]
        except KeyError:
            raise ValueError(
                f"no mail template for {kind!r}: the kinds are {', '.join(self.kinds)}; add "
                "one with MailTemplates(overrides=...) or a template directory"
            ) from None
