"""Second factors through the gate and the HTTP API: TOTP enrolment and the two-step
login, replay, the lock-out, recovery codes, a role that requires a factor, an admin's
reset, the audit trail, and what a store dump holds."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pyotp
import pytest

from authgate import Gate
from authgate.audit import AuditEvent
from authgate.errors import (
    AccountLocked,
    BadCredentials,
    InvalidToken,
    PermissionDenied,
    SecondFactorRequired,
)
from authgate.flows.browser import BrowserSession
from authgate.identity import Client
from authgate.middleware.wsgi import AuthGateWSGIMiddleware
from authgate.testing import cheap_hasher
from authgate.tokens import TokenPair

SECRET = "mfa-tests-secret-Xq7LpR2vNw9KzT4bHs8YdG3mCf6J"
PW = "alice password 1"
HERE = Client("203.0.113.9", "pytest")


@pytest.fixture
def events() -> list[AuditEvent]:
    return []


def _gate(events: list[AuditEvent], **extra: Any) -> Gate:
    gate = Gate(
        hasher=cheap_hasher(),
        store="memory://",
        secret_key=SECRET,
        max_failures_per_address=0,
        **extra,
    )
    gate.audit.subscribe(events.append)
    gate.create_user("alice", PW, roles=["viewer"])
    gate.create_user("root", "root password 1", roles=["admin"])
    return gate


@pytest.fixture
def gate(events: list[AuditEvent]) -> Gate:
    return _gate(events)


def _enrol(gate: Gate, username: str = "alice", password: str = PW) -> tuple[pyotp.TOTP, list[str]]:
    me = gate.authenticate(gate.login(username, password).access_token)
    enrolment = gate.begin_totp(me)
    totp = pyotp.TOTP(enrolment.secret)
    codes = gate.confirm_totp(me, totp.now())
    return totp, codes


def _challenge(gate: Gate, username: str = "alice", password: str = PW) -> str:
    with pytest.raises(SecondFactorRequired) as asked:
        gate.login(username, password)
    return asked.value.challenge


def _next_code(totp: pyotp.TOTP) -> str:
    """A code of the next time step (the clock accepts one step ahead): a code not
    used yet, without waiting for the clock."""
    return totp.at(time.time() + 30)


def test_enrolment_then_a_login_in_two_steps(gate: Gate, events: list[AuditEvent]) -> None:
    me = gate.authenticate(gate.login("alice", PW).access_token)
    enrolment = gate.begin_totp(me)
    assert enrolment.uri.startswith("otpauth://totp/authgate:alice?secret=")
    assert enrolment.qr_svg.startswith("<svg")
    gate.login("alice", PW)  # not active until a first code confirms it
    totp = pyotp.TOTP(enrolment.secret)
    with pytest.raises(BadCredentials):
        gate.confirm_totp(me, "000000" if totp.now() != "000000" else "111111")
    codes = gate.confirm_totp(me, totp.now())
    assert len(codes) == 10
    challenge = _challenge(gate)
    pair = gate.complete_login(challenge, _next_code(totp))
    assert isinstance(pair, TokenPair)
    assert gate.authenticate(pair.access_token).username == "alice"
    kinds = [e.event for e in events]
    for kind in ("mfa_enrolment_started", "mfa_failure", "mfa_enrolled", "login_second_step",
                 "mfa_success"):  # fmt: skip
        assert kind in kinds, kind


def test_a_code_replayed_is_refused(gate: Gate) -> None:
    totp, _ = _enrol(gate)
    code = _next_code(totp)
    gate.complete_login(_challenge(gate), code)
    with pytest.raises(BadCredentials):
        gate.complete_login(_challenge(gate), code)  # the same code, a new login


def test_a_challenge_works_once(gate: Gate) -> None:
    _, codes = _enrol(gate)
    challenge = _challenge(gate)
    gate.complete_login(challenge, codes[0])
    with pytest.raises(InvalidToken):
        gate.complete_login(challenge, codes[1])


def test_the_eleventh_wrong_code_is_locked_out_as_a_password_would_be(
    events: list[AuditEvent],
) -> None:
    gate = _gate(events, max_login_attempts=10)
    totp, _ = _enrol(gate)
    challenge = _challenge(gate)
    wrong = "000000" if _next_code(totp) != "000000" else "111111"
    for _ in range(10):
        with pytest.raises(BadCredentials):
            gate.complete_login(challenge, wrong)
    with pytest.raises(AccountLocked) as locked:
        gate.complete_login(challenge, _next_code(totp))  # even the right code now
    with pytest.raises(AccountLocked) as by_password:
        gate.login("alice", PW)
    assert locked.value.code == by_password.value.code == "account_locked"
    assert "lockout" in [e.event for e in events]


def test_the_password_step_does_not_clear_failed_codes(events: list[AuditEvent]) -> None:
    gate = _gate(events, max_login_attempts=3)
    totp, _ = _enrol(gate)
    for _ in range(3):  # a new challenge each time: the count goes on
        with pytest.raises(BadCredentials):
            gate.complete_login(_challenge(gate), "999999" if totp.now() != "999999" else "888888")
    with pytest.raises(AccountLocked):
        gate.login("alice", PW)


def test_a_recovery_code_works_once(gate: Gate, events: list[AuditEvent]) -> None:
    _, codes = _enrol(gate)
    gate.complete_login(_challenge(gate), codes[3])
    with pytest.raises(BadCredentials):
        gate.complete_login(_challenge(gate), codes[3])
    assert any(e.event == "mfa_success" and "recovery_code" in e.detail for e in events)


def test_regenerated_recovery_codes_void_the_old_set(gate: Gate) -> None:
    totp, old = _enrol(gate)
    me = gate.authenticate(gate.complete_login(_challenge(gate), old[0]).access_token)  # type: ignore[union-attr]
    new = gate.regenerate_recovery_codes(me, _next_code(totp))
    assert not set(new) & set(old)
    with pytest.raises(BadCredentials):
        gate.complete_login(_challenge(gate), old[1])
    gate.complete_login(_challenge(gate), new[0])


def test_after_an_admin_reset_the_password_alone_logs_in(
    gate: Gate, events: list[AuditEvent]
) -> None:
    _enrol(gate)
    gate.reset_mfa("alice", actor="root")
    gate.login("alice", PW)
    assert any(e.event == "mfa_reset" and e.actor == "root" for e in events)


def test_a_role_that_requires_a_factor_makes_its_holders_enrol(events: list[AuditEvent]) -> None:
    gate = _gate(events, mfa_roles=("operator",))
    gate.login("alice", PW)  # a viewer: no factor needed
    with pytest.raises(SecondFactorRequired) as asked:
        gate.login("root", "root password 1")  # admin includes operator
    assert asked.value.methods == ["enrol_totp"]
    challenge = asked.value.challenge
    with pytest.raises(InvalidToken):
        gate.complete_login(challenge, "123456")  # an enrolment challenge opens nothing
    app = AuthGateWSGIMiddleware(_nothing, gate, api=True)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="https://t") as client:
        begun = client.post("/auth/mfa/totp", json={"mfa_token": challenge})
        assert begun.status_code == 201
        totp = pyotp.TOTP(begun.json()["secret"])
        done = client.post(
            "/auth/mfa/totp/confirm", json={"mfa_token": challenge, "code": totp.now()}
        )
        assert done.status_code == 200
        assert len(done.json()["recovery_codes"]) == 10 and done.json()["access_token"]
    # Reset by an admin: the next login asks for enrolment again.
    gate.reset_mfa("root", actor="cli")
    with pytest.raises(SecondFactorRequired) as again:
        gate.login("root", "root password 1")
    assert again.value.methods == ["enrol_totp"]


def test_scram_cannot_skip_the_second_factor(gate: Gate) -> None:
    from authgate.flows.mfa import pending

    _enrol(gate)
    user = gate.store.get_user("alice")
    assert user is not None
    with pytest.raises(PermissionDenied):
        pending(None, gate.rules, user)  # what the SCRAM handshake asks before a session


def test_a_store_dump_holds_no_totp_secret_or_recovery_code(gate: Gate) -> None:
    me = gate.authenticate(gate.login("alice", PW).access_token)
    enrolment = gate.begin_totp(me)
    codes = gate.confirm_totp(me, pyotp.TOTP(enrolment.secret).now())
    stored = gate.store.get_user("alice")
    assert stored is not None and stored.factors
    assert enrolment.secret not in stored.factors
    assert not any(code in stored.factors for code in codes)
    assert "factors" not in stored.to_public_dict() and enrolment.secret not in repr(stored)
    other = Gate(store=gate.store, secret_key="other-secret-Zt5QwE8rTy1UiO4pAs7DfG0hJk3L")
    with pytest.raises(BadCredentials):  # a dump with another key opens nothing
        other.complete_login(_challenge(other), pyotp.TOTP(enrolment.secret).now())


def test_a_browser_login_with_a_factor_ends_in_a_cookie_session(events: list[AuditEvent]) -> None:
    gate = _gate(events, cookie_sessions=True)
    totp, codes = _enrol(gate)
    with pytest.raises(SecondFactorRequired) as asked:
        gate.browser_login("alice", PW, remember=True)
    opened = gate.complete_login(asked.value.challenge, _next_code(totp))
    assert isinstance(opened, BrowserSession) and opened.remember
    app = AuthGateWSGIMiddleware(_nothing, gate, api=True)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="https://t") as client:
        first = client.post("/auth/session", json={"username": "alice", "password": PW})
        assert first.status_code == 403 and first.json()["error"] == "mfa_required"
        assert "set-cookie" not in first.headers
        step = client.post(
            "/auth/mfa",
            # a recovery code: the TOTP codes of this minute are spent (no replay)
            json={"mfa_token": first.json()["mfa_token"], "code": codes[0]},
        )
        assert step.status_code == 200, step.text
        assert "__Host-authgate_session=ags_" in step.headers["set-cookie"]
        assert client.get("/auth/me").json()["username"] == "alice"


def _nothing(environ: Any, start_response: Any) -> Iterator[bytes]:
    start_response("404 Not Found", [])
    return iter([])


def test_an_enrolment_challenge_dies_with_a_new_password(events: list[AuditEvent]) -> None:
    """Someone who had the password got an enrolment challenge; the owner resets the
    password: the challenge can no longer enrol (and take over) the account."""
    gate = _gate(events, mfa_roles=("admin",))
    with pytest.raises(SecondFactorRequired) as asked:
        gate.login("root", "root password 1")
    gate.set_password("root", "new root password 2")
    app = AuthGateWSGIMiddleware(_nothing, gate, api=True)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="https://t") as client:
        refused = client.post("/auth/mfa/totp", json={"mfa_token": asked.value.challenge})
    assert refused.status_code == 401
    assert gate.store.get_user("root").factors == ""  # type: ignore[union-attr]


def test_a_form_login_goes_to_the_second_step_page_with_the_challenge_in_a_cookie(
    events: list[AuditEvent],
) -> None:
    gate = _gate(events, cookie_sessions=True, login_url="/login", mfa_url="/login/code")
    _, codes = _enrol(gate)
    app = AuthGateWSGIMiddleware(_nothing, gate, api=True)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="https://t") as client:
        token = client.get("/auth/csrf").json()["csrf_token"]
        form = {"username": "alice", "password": PW, "csrf_token": token, "next": "/notes"}
        first = client.post("/auth/session", data=form)
        assert first.status_code == 303
        assert first.headers["location"] == "/login/code?next=%2Fnotes"
        set_cookies = first.headers.get_list("set-cookie")
        assert len(set_cookies) == 1 and set_cookies[0].startswith("__Host-authgate_mfa=")
        assert "HttpOnly" in set_cookies[0] and "Max-Age=300" in set_cookies[0]
        assert client.get("/auth/me").status_code == 401  # no session yet
        step = {"csrf_token": token, "next": "/notes", "back": "/login/code"}
        wrong = client.post("/auth/mfa", data={**step, "code": "12345678901x"})
        assert wrong.status_code == 303
        assert wrong.headers["location"] == "/login/code?error=invalid_credentials&next=%2Fnotes"
        forged = client.post("/auth/mfa", data={**step, "code": codes[0], "csrf_token": "x" * 86})
        assert forged.headers["location"].startswith("/login/code?error=csrf_failed")
        done = client.post("/auth/mfa", data={**step, "code": codes[0]})
        assert done.status_code == 303 and done.headers["location"] == "/notes"
        names = [c.split("=")[0] for c in done.headers.get_list("set-cookie")]
        assert names == ["__Host-authgate_session", "__Host-authgate_csrf", "__Host-authgate_mfa"]
        assert client.get("/auth/me").json()["username"] == "alice"
        again = client.post("/auth/mfa", data={**step, "code": codes[1]})
        assert again.status_code == 403  # a live session now: the old token is not its own
