"""Self-service accounts: password reset, email verification, sign-up; through the Python
API, the HTTP API (over the WSGI middleware) and the flows stepped without I/O."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from authgate import Gate
from authgate.audit import AuditEvent
from authgate.errors import (
    BadCredentials,
    ConfigError,
    EmailNotVerified,
    InvalidToken,
    SessionRevoked,
    TooManyAttempts,
    UserExists,
    ValidationError,
)
from authgate.flows import run
from authgate.flows.accounts import InvalidLink, request_password_reset
from authgate.identity import Client
from authgate.mail import MailMessage, MemorySender, Outbox
from authgate.middleware.wsgi import AuthGateWSGIMiddleware
from authgate.stores import open_store
from authgate.testing import MailCatcher, cheap_hasher

SECRET = "account-tests-secret-0123456789-abcdefghijklmnop"
PUBLIC = "https://app.example"
HERE = Client("203.0.113.7", "pytest")


class Mail:
    """The gate's outbox over a `MemorySender`: what was sent, once delivered."""

    def __init__(self) -> None:
        self.sender = MemorySender()
        self.outbox = Outbox(self.sender, retries=0)

    def sent(self) -> list[MailMessage]:
        assert self.outbox.flush(10)
        return self.sender.messages

    def link(self, to: str) -> str:
        """The last mailed link to `to`."""
        [message] = [m for m in self.sent() if m.to == to][-1:]
        return next(word for word in message.text.split() if word.startswith("https://"))

    def token(self, to: str) -> str:
        return parse_qs(urlsplit(self.link(to)).query)["token"][0]


def _gate(mail: Mail, **extra: Any) -> Gate:
    settings: dict[str, Any] = {
        "store": "memory://",
        "secret_key": SECRET,
        "public_url": PUBLIC,
        "mail_url": "memory://",
        "max_failures_per_address": 0,
        **extra,
    }
    gate = Gate(hasher=cheap_hasher(), outbox=mail.outbox, **settings)
    gate.create_user("alice", "old password 1", roles=["viewer"], email="alice@example.com")
    gate.create_user("bob", "bobs password 1", roles=["viewer"])  # no address
    return gate


@pytest.fixture
def mail() -> Iterator[Mail]:
    box = Mail()
    yield box
    box.outbox.close(1)


@pytest.fixture
def gate(mail: Mail) -> Gate:
    return _gate(mail)


def _http(gate: Gate) -> httpx.Client:
    app = AuthGateWSGIMiddleware(_nothing, gate, api=True)
    return httpx.Client(transport=httpx.WSGITransport(app=app), base_url="https://testserver")


def _nothing(environ: Any, start_response: Any) -> list[bytes]:
    start_response("404 Not Found", [])
    return []


# -- reset ------------------------------------------------------------------------------


def test_a_reset_link_works_once_and_ends_every_session(gate: Gate, mail: Mail) -> None:
    pair = gate.login("alice", "old password 1")
    gate.request_password_reset("alice", HERE)
    link = mail.link("alice@example.com")
    assert link.startswith(f"{PUBLIC}/reset-password?token=")
    token = mail.token("alice@example.com")
    gate.reset_password(token, "new password 2", HERE)
    with pytest.raises(SessionRevoked):
        gate.authenticate(pair.access_token)
    with pytest.raises(BadCredentials):
        gate.login("alice", "old password 1")
    gate.login("alice", "new password 2")
    with pytest.raises(InvalidLink):  # used twice
        gate.reset_password(token, "third password 3", HERE)
    gate.login("alice", "new password 2")  # and the second use changed nothing
    kinds = [m.kind for m in mail.sent()]
    assert kinds == ["password_reset", "password_changed"]


def test_a_link_is_refused_after_another_reset(gate: Gate, mail: Mail) -> None:
    gate.request_password_reset("alice", HERE)
    first = mail.token("alice@example.com")
    gate.request_password_reset("alice", HERE)
    second = mail.token("alice@example.com")
    gate.reset_password(second, "new password 2", HERE)
    with pytest.raises(InvalidLink):
        gate.reset_password(first, "other password 3", HERE)
    gate.login("alice", "new password 2")


def test_a_newer_link_supersedes_an_unused_one(gate: Gate, mail: Mail) -> None:
    gate.request_password_reset("alice", HERE)
    first = mail.token("alice@example.com")
    gate.request_password_reset("alice", HERE)
    with pytest.raises(InvalidLink):
        gate.reset_password(first, "new password 2", HERE)
    gate.reset_password(mail.token("alice@example.com"), "new password 2", HERE)


def test_a_link_is_refused_after_the_password_changed(gate: Gate, mail: Mail) -> None:
    gate.request_password_reset("alice", HERE)
    token = mail.token("alice@example.com")
    me = gate.authenticate(gate.login("alice", "old password 1").access_token)
    gate.change_password(me, "old password 1", "changed password 2")
    with pytest.raises(InvalidLink):
        gate.reset_password(token, "new password 3", HERE)
    gate.login("alice", "changed password 2")


def test_a_link_of_a_deleted_user_does_not_work_for_a_new_one_of_the_same_name(
    gate: Gate, mail: Mail
) -> None:
    gate.request_password_reset("alice", HERE)
    token = mail.token("alice@example.com")
    gate.delete_user("alice")
    gate.create_user("alice", "someone else 1", email="alice@example.com")
    with pytest.raises(InvalidLink):
        gate.reset_password(token, "taken over 2", HERE)
    gate.login("alice", "someone else 1")


def test_one_link_used_twice_at_once_resets_once(tmp_path: Any, mail: Mail) -> None:
    import threading

    gate = _gate(mail, store=f"sqlite:///{tmp_path / 'race.db'}")
    gate.request_password_reset("alice", HERE)
    token = mail.token("alice@example.com")
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def use(password: str) -> None:
        other = Gate(
            hasher=cheap_hasher(),
            store=f"sqlite:///{tmp_path / 'race.db'}",
            secret_key=SECRET,
            public_url=PUBLIC,
            outbox=Outbox(MemorySender()),
            mail_url="memory://",
        )
        barrier.wait()
        try:
            other.reset_password(token, password, HERE)
            outcomes.append(password)
        except InvalidLink:
            outcomes.append("refused")

    threads = [threading.Thread(target=use, args=(f"racer password {i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [o for o in outcomes if o != "refused"]
    assert len(winners) == 1 and outcomes.count("refused") == 3
    gate.login("alice", winners[0])


def test_a_disabled_account_gets_no_link_and_its_old_links_die(gate: Gate, mail: Mail) -> None:
    gate.request_password_reset("alice", HERE)
    token = mail.token("alice@example.com")
    gate.update_user("alice", enabled=False)
    gate.request_password_reset("alice", HERE)
    assert [m.kind for m in mail.sent()] == ["password_reset"]  # the one from before
    with pytest.raises(InvalidLink):
        gate.reset_password(token, "new password 2", HERE)


def test_a_weak_new_password_is_refused_and_spends_nothing(gate: Gate, mail: Mail) -> None:
    gate.request_password_reset("alice", HERE)
    token = mail.token("alice@example.com")
    with pytest.raises(ValidationError):
        gate.reset_password(token, "short", HERE)
    gate.reset_password(token, "long enough 2", HERE)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),
        lambda t: t + "x",
        lambda t: "",
        lambda t: "not.a.token",
        lambda t: "a" * 5000,
    ],
)
def test_a_tampered_link_is_refused(gate: Gate, mail: Mail, mangle: Any) -> None:
    gate.request_password_reset("alice", HERE)
    token = mail.token("alice@example.com")
    with pytest.raises(InvalidLink):
        gate.reset_password(mangle(token), "new password 2", HERE)
    gate.login("alice", "old password 1")


def test_link_tokens_are_not_interchangeable(gate: Gate, mail: Mail) -> None:
    gate.update_user("alice", email_verified=False)
    gate.request_password_reset("alice", HERE)
    reset = mail.token("alice@example.com")
    gate.request_verification("alice", HERE)
    verify = mail.token("alice@example.com")
    with pytest.raises(InvalidLink):
        gate.verify_email(reset, HERE)
    with pytest.raises(InvalidLink):
        gate.reset_password(verify, "new password 2", HERE)
    access = gate.login("alice", "old password 1").access_token
    with pytest.raises(InvalidLink):
        gate.reset_password(access, "new password 2", HERE)
    with pytest.raises(InvalidToken):  # and a reset token is no access token
        gate.authenticate(reset)


def test_an_expired_link_is_refused(mail: Mail) -> None:
    gate = _gate(mail, reset_ttl=1)
    gate.request_password_reset("alice", HERE)
    token = mail.token("alice@example.com")
    time.sleep(2.1)  # the token's exp is in whole seconds: a second past it
    with pytest.raises(InvalidLink):
        gate.reset_password(token, "new password 2", HERE)
    gate.login("alice", "old password 1")


def test_a_reset_lifts_a_lock_out(mail: Mail) -> None:
    gate = _gate(mail, max_login_attempts=2)
    for _ in range(2):
        with pytest.raises(BadCredentials):
            gate.login("alice", "wrong password")
    with pytest.raises(TooManyAttempts):
        gate.login("alice", "old password 1")
    gate.request_password_reset("alice", HERE)
    gate.reset_password(mail.token("alice@example.com"), "new password 2", HERE)
    gate.login("alice", "new password 2")


def test_reset_requests_answer_alike_for_known_and_unknown_accounts(gate: Gate, mail: Mail) -> None:
    with _http(gate) as client:
        answers = [
            client.post("/auth/password/forgot", json={"username": name})
            for name in ("alice", "nobody", "bob", "not a valid name!")
        ]
    assert {a.status_code for a in answers} == {202}
    assert len({a.content for a in answers}) == 1
    assert len({tuple(sorted(a.headers.items())) for a in answers}) == 1
    assert [m.to for m in mail.sent()] == ["alice@example.com"]


class _Recording:
    """A store that records the name of each operation it is asked for."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.calls.append(name)
        return getattr(self.store, name)


def test_reset_requests_take_the_same_operations_whoever_is_named(gate: Gate) -> None:
    """The time of a request cannot tell accounts apart: a known, an unknown and an
    address-less account take the same store operations in the same order (mail goes
    out on the outbox's thread)."""
    seen = []
    for name in ("alice", "nobody", "bob"):
        store = _Recording(gate.store)
        events: list[str] = []

        def record(event: AuditEvent, into: list[str] = events) -> None:
            into.append(event.event)

        run(request_password_reset(gate.accounts, name, HERE), store, gate.hasher, record)
        seen.append((store.calls, events))
    assert seen[0] == seen[1] == seen[2]
    assert seen[0][0] == ["get_user", "incr", "incr", "incr", "expire_counter"]


def test_past_the_accounts_limit_nothing_more_is_sent_and_the_answer_stays(mail: Mail) -> None:
    gate = _gate(mail, max_mail_requests_per_account=2)
    with _http(gate) as client:
        answers = [
            client.post("/auth/password/forgot", json={"username": "alice"}) for _ in range(4)
        ]
    assert [a.status_code for a in answers] == [202] * 4
    assert len(mail.sent()) == 2


def test_past_the_addresss_limit_everybody_gets_429(mail: Mail) -> None:
    gate = _gate(mail, max_mail_requests_per_address=3)
    for name in ("alice", "nobody", "bob"):
        gate.request_password_reset(name, HERE)
    for name in ("alice", "nobody"):
        with pytest.raises(TooManyAttempts):
            gate.request_password_reset(name, HERE)
    gate.request_password_reset("alice", Client("198.51.100.1"))  # another address


def test_links_start_with_the_public_url_whatever_the_host_header(gate: Gate, mail: Mail) -> None:
    with _http(gate) as client:
        client.post(
            "/auth/password/forgot",
            json={"username": "alice"},
            headers={"host": "evil.example", "x-forwarded-host": "evil.example"},
        )
    assert mail.link("alice@example.com").startswith(f"{PUBLIC}/reset-password?token=")


def test_reset_over_http_and_its_errors(gate: Gate, mail: Mail) -> None:
    with _http(gate) as client:
        client.post("/auth/password/forgot", json={"email": "alice"})
        token = mail.token("alice@example.com")
        weak = client.post("/auth/password/reset", json={"token": token, "new_password": "x"})
        assert weak.status_code == 400 and weak.json()["error"] == "invalid_password"
        done = client.post(
            "/auth/password/reset", json={"token": token, "new_password": "new password 2"}
        )
        assert done.status_code == 204
        again = client.post(
            "/auth/password/reset", json={"token": token, "new_password": "new password 3"}
        )
        assert again.status_code == 400 and again.json()["error"] == "invalid_link"
        extra = client.post(
            "/auth/password/reset", json={"token": token, "new_password": "n", "x": 1}
        )
        assert extra.status_code == 400
        text = client.post(
            "/auth/password/forgot", content=b"{}", headers={"content-type": "text/plain"}
        )
        assert text.status_code == 415


def test_mail_is_not_configured_by_default() -> None:
    gate = Gate(hasher=cheap_hasher(), store="memory://", secret_key=SECRET)
    with _http(gate) as client:
        reply = client.post("/auth/password/forgot", json={"username": "alice"})
    assert reply.status_code == 404


def test_mail_without_a_public_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="PUBLIC_URL"):
        Gate(store="memory://", secret_key=SECRET, mail_url="console://")
    with pytest.raises(ConfigError, match="MAIL_URL"):
        Gate(store="memory://", secret_key=SECRET, require_verified_email=True)


# -- verification -----------------------------------------------------------------------


def test_verification_gates_logins_when_required(mail: Mail) -> None:
    gate = _gate(mail, require_verified_email=True)
    with pytest.raises(EmailNotVerified):
        gate.login("alice", "old password 1")
    with pytest.raises(BadCredentials):  # a wrong password still says nothing more
        gate.login("alice", "wrong password")
    gate.request_verification("alice", HERE)
    user = gate.verify_email(mail.token("alice@example.com"), HERE)
    assert user.email_verified
    gate.login("alice", "old password 1")
    with pytest.raises(InvalidLink):
        gate.verify_email(mail.token("alice@example.com"), HERE)


def test_a_verification_link_for_an_old_address_is_refused(gate: Gate, mail: Mail) -> None:
    gate.request_verification("alice", HERE)
    token = mail.token("alice@example.com")
    gate.update_user("alice", email="alice@elsewhere.example")
    with pytest.raises(InvalidLink):
        gate.verify_email(token, HERE)


def test_a_reset_confirms_the_address(gate: Gate, mail: Mail) -> None:
    gate.request_password_reset("alice", HERE)
    assert gate.reset_password(
        mail.token("alice@example.com"), "new password 2", HERE
    ).email_verified


# -- sign-up ----------------------------------------------------------------------------


def test_sign_up_is_off_by_default(gate: Gate) -> None:
    with _http(gate) as client:
        reply = client.post(
            "/auth/signup", json={"username": "carol", "password": "carols password"}
        )
    assert reply.status_code == 404


def test_sign_up_gives_the_lowest_role_and_no_choice_of_one(mail: Mail) -> None:
    gate = _gate(mail, signup=True)
    with _http(gate) as client:
        body = {"username": "carol", "password": "carols password"}
        for extra in ({"role": "admin"}, {"roles": ["admin"]}, {"permissions": ["*:*"]},
                      {"groups": ["x"]}, {"enabled": True}, {"email_verified": True}):  # fmt: skip
            refused = client.post("/auth/signup", json={**body, **extra})
            assert refused.status_code == 400, extra
        weak = client.post("/auth/signup", json={**body, "password": "short"})
        assert weak.status_code == 400 and weak.json()["error"] == "invalid_password"
        made = client.post("/auth/signup", json=body)
        assert made.status_code == 201 and made.json()["roles"] == ["viewer"]
        taken = client.post("/auth/signup", json=body)
        assert taken.status_code == 409
    assert gate.store.get_user("carol") is not None
    assert not gate.store.get_user("carol").email_verified  # type: ignore[union-attr]


def test_sign_up_role_is_configurable(mail: Mail) -> None:
    gate = _gate(mail, signup=True, signup_role="operator")
    assert gate.sign_up("carol", "carols password").user.roles == {"operator"}  # type: ignore[union-attr]


def test_sign_up_with_verification_tells_nobody_whether_a_name_is_taken(mail: Mail) -> None:
    gate = _gate(mail, signup=True, require_verified_email=True)
    gate.update_user("alice", email_verified=True)
    with _http(gate) as client:
        new = client.post(
            "/auth/signup",
            json={"username": "carol", "password": "carols password", "email": "carol@example.com"},
        )
        taken = client.post(
            "/auth/signup",
            json={
                "username": "alice",
                "password": "any password 9",
                "email": "mallory@example.com",
            },
        )
    assert new.status_code == taken.status_code == 202
    assert new.content == taken.content
    sent = {m.to: m.kind for m in mail.sent()}
    assert sent == {"carol@example.com": "verify_email", "alice@example.com": "account_exists"}
    with pytest.raises(EmailNotVerified):
        gate.login("carol", "carols password")
    gate.verify_email(mail.token("carol@example.com"), HERE)
    gate.login("carol", "carols password")
    gate.login("alice", "old password 1")  # the taken account is untouched


def test_email_login_makes_the_address_the_unique_normalised_name(mail: Mail) -> None:
    gate = _gate(mail, signup=True, email_login=True)
    made = gate.sign_up("Carol@Example.COM", "carols password").user
    assert made is not None and made.username == made.email == "carol@example.com"
    with pytest.raises(UserExists):
        gate.sign_up("carol@example.com", "another password")
    with pytest.raises(ValidationError):
        gate.sign_up("carol", "carols password")  # not an address
    gate.login("CAROL@example.com", "carols password")


def test_mail_goes_out_over_real_smtp(tmp_path: Any) -> None:
    with MailCatcher() as catcher:
        gate = Gate(
            hasher=cheap_hasher(),
            store="memory://",
            secret_key=SECRET,
            public_url=PUBLIC,
            mail_url=catcher.url,
            mail_from="auth@app.example",
        )
        gate.create_user("alice", "old password 1", email="alice@example.com")
        gate.request_password_reset("alice", HERE)
        message = catcher.wait_for("alice@example.com")
        [link] = [u for u in catcher.links(message) if "token=" in u]
        token = parse_qs(urlsplit(link).query)["token"][0]
        gate.reset_password(token, "new password 2", HERE)
        gate.login("alice", "new password 2")
        assert gate.outbox is not None
        gate.outbox.close(5)
    store = open_store("memory://")
    store.close()


# -- what the security review of the first version found -----------------------------------


def test_requests_that_mail_nothing_do_not_spend_the_link_in_the_mailbox(mail: Mail) -> None:
    gate = _gate(mail, max_mail_requests_per_account=1)
    gate.request_password_reset("alice", HERE)
    token = mail.token("alice@example.com")
    for _ in range(3):  # someone else asks again and again: past the limit, nothing goes
        gate.request_password_reset("alice", Client("198.51.100.66"))
    assert len(mail.sent()) == 1
    gate.reset_password(token, "new password 2", HERE)


def test_a_user_without_an_address_is_not_held_to_verification(mail: Mail) -> None:
    gate = _gate(mail, require_verified_email=True)
    gate.login("bob", "bobs password 1")  # no address to confirm (a seeded admin, say)
    with pytest.raises(EmailNotVerified):
        gate.login("alice", "old password 1")


def test_sign_up_needs_a_named_role_when_several_are_lowest(mail: Mail) -> None:
    from authgate.permissions import RolePolicy
    from authgate.users import RoleHierarchy

    graph = RoleHierarchy.graph({"admin": ["auditor", "viewer"]})
    policy = RolePolicy({"admin": ["*:*"]}, hierarchy=graph)
    with pytest.raises(ConfigError, match="AUTHGATE_SIGNUP_ROLE"):
        Gate(store="memory://", secret_key=SECRET, signup=True, policy=policy)
    gate = Gate(
        store="memory://",
        secret_key=SECRET,
        signup=True,
        signup_role="viewer",
        policy=policy,
        hasher=cheap_hasher(),
    )
    assert gate.sign_up("carol", "carols password").user.roles == {"viewer"}  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="includes admin"):
        Gate(store="memory://", secret_key=SECRET, signup=True, signup_role="admin")
    with pytest.raises(ConfigError):
        Gate(store="memory://", secret_key=SECRET, signup=True, roles=("admin",))


def test_sign_ups_count_against_the_addresss_limit(mail: Mail) -> None:
    gate = _gate(mail, signup=True, max_mail_requests_per_address=2)
    gate.sign_up("carol", "carols password", HERE)
    gate.sign_up("dave", "daves password", HERE)
    with pytest.raises(TooManyAttempts):
        gate.sign_up("erin", "erins password", HERE)
    assert gate.store.get_user("erin") is None


def test_a_sign_up_form_goes_where_it_says(mail: Mail) -> None:
    gate = _gate(mail, signup=True, cookie_sessions=True, login_url="/login")
    with _http(gate) as client:
        token = client.get("/auth/csrf").json()["csrf_token"]
        form = {"username": "carol", "password": "carols password", "csrf_token": token,
                "next": "/welcome", "back": "/signup"}  # fmt: skip
        made = client.post("/auth/signup", data=form)
        assert made.status_code == 303 and made.headers["location"] == "/welcome"
        taken = client.post("/auth/signup", data=form)
        assert taken.status_code == 303
        assert taken.headers["location"] == "/signup?error=user_exists&next=%2Fwelcome"
