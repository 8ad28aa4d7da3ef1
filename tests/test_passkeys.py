"""Passkeys (WebAuthn) through the gate and the HTTP API, answered by a software
authenticator that makes real P-256 keys and real signatures (`SoftAuthenticator`):
registration, a login by passkey alone, a passkey as the second step and as a step-up,
listing and removal; and every way an answer could be abused: another origin, another
relying party, another ceremony's challenge, a replay, a cloned authenticator, a
tampered user handle, no user verification, a removed or disabled account's passkey,
malformed answers; the lock-out, the audit trail, an admin's reset."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from authgate import Gate
from authgate.audit import AuditEvent
from authgate.errors import (
    AccountLocked,
    BadCredentials,
    ConfigError,
    Conflict,
    InvalidToken,
    NotFound,
    SecondFactorRequired,
    StepUpRequired,
    ValidationError,
)
from authgate.identity import Client, Identity
from authgate.middleware.wsgi import AuthGateWSGIMiddleware
from authgate.testing import SoftAuthenticator, cheap_hasher
from authgate.tokens import TokenPair

pytest.importorskip("webauthn")

SECRET = "passkey-tests-secret-Vb8nQ3xR7mKp2LwT9sHd4GfZ"
PW = "alice password 1"
ORIGIN = "https://login.example.com"
HERE = Client("203.0.113.5", "pytest")


@pytest.fixture
def events() -> list[AuditEvent]:
    return []


def _gate(events: list[AuditEvent], **extra: Any) -> Gate:
    gate = Gate(
        hasher=cheap_hasher(),
        store="memory://",
        secret_key=SECRET,
        max_failures_per_address=0,
        passkey_rp_id="example.com",
        passkey_origins=(ORIGIN,),
        **extra,
    )
    gate.audit.subscribe(events.append)
    gate.create_user("alice", PW, roles=["viewer"])
    gate.create_user("bob", "bob password 12", roles=["viewer"])
    return gate


@pytest.fixture
def gate(events: list[AuditEvent]) -> Iterator[Gate]:
    made = _gate(events)
    yield made
    made.close()


def _me(gate: Gate, username: str = "alice", password: str = PW) -> Identity:
    return gate.authenticate(gate.login(username, password).access_token)


def _register(
    gate: Gate, device: SoftAuthenticator, username: str = "alice", password: str = PW
) -> tuple[str, list[str]]:
    me = _me(gate, username, password)
    options = gate.begin_passkey(me)
    key, codes = gate.add_passkey(me, options["passkey_token"], device.create(options), "laptop")
    return key.id, codes


def _second_step(gate: Gate, username: str = "alice", password: str = PW) -> SecondFactorRequired:
    with pytest.raises(SecondFactorRequired) as asked:
        gate.login(username, password)
    return asked.value


def _passwordless(gate: Gate, device: SoftAuthenticator, **get: Any) -> TokenPair:
    options = gate.passkey_login_options()
    pair = gate.passkey_login(options["passkey_token"], device.get(options, **get))
    assert isinstance(pair, TokenPair)
    return pair


# -- the ceremonies --------------------------------------------------------------------------


def test_a_passkey_registered_then_used_alone_as_second_step_and_for_a_step_up(
    gate: Gate, events: list[AuditEvent]
) -> None:
    device = SoftAuthenticator(ORIGIN)
    me = _me(gate)
    options = gate.begin_passkey(me)
    public = options["publicKey"]
    assert public["rp"] == {"id": "example.com", "name": "authgate"}
    assert base64.urlsafe_b64decode(public["user"]["id"] + "==").decode() == me.user_id
    assert public["authenticatorSelection"]["residentKey"] == "required"
    key, codes = gate.add_passkey(me, options["passkey_token"], device.create(options), "laptop")
    assert key.name == "laptop" and len(codes) == 10  # the first factor: recovery codes
    assert gate.passkeys(me)[0]["id"] == key.id and "public_key" not in gate.passkeys(me)[0]
    # The login asks for the second step, with the options of navigator.credentials.get().
    asked = _second_step(gate)
    assert asked.methods == ["recovery_code", "passkey"] and asked.passkey is not None
    allowed = [c["id"] for c in asked.passkey["publicKey"]["allowCredentials"]]  # type: ignore[index]
    assert allowed == [key.id]
    pair = gate.complete_login(asked.challenge, passkey=device.get(asked.passkey))
    assert isinstance(pair, TokenPair)
    assert gate.authenticate(pair.access_token).claims["amr"] == ("pwd", "hwk", "mfa")
    # Alone: the passkey names its user, and verified them (a PIN or a biometric).
    alone = gate.authenticate(_passwordless(gate, device).access_token)
    assert alone.username == "alice" and alone.claims["amr"] == ("hwk", "user", "mfa")
    # A step-up by passkey renews the session.
    how = gate.reauth_options(alone)
    assert how["methods"] == ["recovery_code", "passkey"]
    renewed = gate.reauthenticate(
        alone, passkey=device.get(how["passkey"]), passkey_token=how["passkey"]["passkey_token"]
    )
    assert isinstance(renewed, TokenPair) and renewed.session_id != alone.session_id
    kinds = [(e.event, e.detail) for e in events]
    assert ("mfa_enrolled", "passkey 'laptop'") in kinds
    assert [k for k in kinds if k[0] == "mfa_success"] == [("mfa_success", "passkey 'laptop'")] * 3
    assert ("reauthenticated", "hwk; session renewed") in kinds


def test_a_passkey_login_token_works_once(gate: Gate) -> None:
    device = SoftAuthenticator(ORIGIN, counts=False)  # no counter to catch the replay
    _register(gate, device)
    options = gate.passkey_login_options()
    answer = device.get(options)
    gate.passkey_login(options["passkey_token"], answer)
    with pytest.raises(InvalidToken, match="used already"):
        gate.passkey_login(options["passkey_token"], answer)


def test_an_authenticator_without_a_counter_signs_in_again_and_again(gate: Gate) -> None:
    device = SoftAuthenticator(ORIGIN, counts=False)
    _register(gate, device)
    for _ in range(3):
        _passwordless(gate, device)


def test_a_cloned_authenticator_whose_counter_goes_back_is_refused(
    gate: Gate, events: list[AuditEvent]
) -> None:
    device = SoftAuthenticator(ORIGIN)
    _register(gate, device)
    _passwordless(gate, device)
    _passwordless(gate, device)  # the stored counter is 2 now
    for held in device.credentials.values():
        held.sign_count = 0  # a clone made before those uses: it signs 1 next
    with pytest.raises(BadCredentials):
        _passwordless(gate, device)
    assert any(e.event == "mfa_failure" and "sign count" in e.detail for e in events)


def test_an_answer_from_another_origin_is_refused(gate: Gate) -> None:
    device = SoftAuthenticator(ORIGIN)
    _register(gate, device)
    options = gate.passkey_login_options()
    phished = device.get(options, origin="https://login.example.com.evil.test")
    with pytest.raises(BadCredentials):
        gate.passkey_login(options["passkey_token"], phished)


def test_a_registration_from_another_origin_is_refused(gate: Gate) -> None:
    me = _me(gate)
    options = gate.begin_passkey(me)
    made = SoftAuthenticator("https://evil.test").create(options)
    with pytest.raises(BadCredentials):
        gate.add_passkey(me, options["passkey_token"], made)
    assert gate.passkeys(me) == []


def test_a_passkey_of_another_relying_party_is_refused(gate: Gate) -> None:
    device = SoftAuthenticator(ORIGIN)
    _register(gate, device)
    options = gate.passkey_login_options()
    options["publicKey"]["rpId"] = "evil.test"  # the authenticator signs for evil.test
    for held in device.credentials.values():
        held.rp_id = "evil.test"
    with pytest.raises(BadCredentials):
        gate.passkey_login(options["passkey_token"], device.get(options))


def test_an_answer_to_another_ceremonys_challenge_is_refused(gate: Gate) -> None:
    device = SoftAuthenticator(ORIGIN)
    _register(gate, device)
    first, second = gate.passkey_login_options(), gate.passkey_login_options()
    with pytest.raises(BadCredentials):
        gate.passkey_login(second["passkey_token"], device.get(first))


def test_ceremony_tokens_serve_only_their_own_ceremony(gate: Gate) -> None:
    device = SoftAuthenticator(ORIGIN)
    _register(gate, device)
    me = _me(gate, "bob", "bob password 12")
    registration = gate.begin_passkey(me)
    with pytest.raises(InvalidToken):
        gate.passkey_login(registration["passkey_token"], device.get(gate.passkey_login_options()))
    login = gate.passkey_login_options()
    with pytest.raises(InvalidToken):
        gate.add_passkey(me, login["passkey_token"], SoftAuthenticator(ORIGIN).create(registration))
    with pytest.raises(InvalidToken):  # an access token is no ceremony token
        gate.passkey_login(gate.login("bob", "bob password 12").access_token, device.get(login))


def test_a_registration_token_is_its_users_alone(gate: Gate) -> None:
    alice, bob = _me(gate), _me(gate, "bob", "bob password 12")
    options = gate.begin_passkey(alice)
    with pytest.raises(InvalidToken, match="another account"):
        gate.add_passkey(bob, options["passkey_token"], SoftAuthenticator(ORIGIN).create(options))


def test_a_passkey_login_needs_a_verified_user(gate: Gate) -> None:
    device = SoftAuthenticator(ORIGIN)
    _register(gate, device)
    device.user_verified = False  # touched, no PIN or biometric
    with pytest.raises(BadCredentials):
        _passwordless(gate, device)
    asked = _second_step(gate)  # as a second factor, after the password, presence is enough
    gate.complete_login(asked.challenge, passkey=device.get(asked.passkey))  # type: ignore[arg-type]


def test_a_user_handle_changed_to_another_users_is_refused(gate: Gate) -> None:
    device = SoftAuthenticator(ORIGIN)
    _register(gate, device)
    bob = gate.store.get_user("bob")
    assert bob is not None
    options = gate.passkey_login_options()
    answer = device.get(options)
    answer["response"]["userHandle"] = base64.urlsafe_b64encode(bob.id.encode()).decode()
    with pytest.raises(BadCredentials):
        gate.passkey_login(options["passkey_token"], answer)


def test_a_removed_passkey_and_a_disabled_accounts_passkey_are_refused_alike(
    gate: Gate,
) -> None:
    device, other = SoftAuthenticator(ORIGIN), SoftAuthenticator(ORIGIN)
    key_id, _ = _register(gate, device)
    _register(gate, other, "bob", "bob password 12")
    me = gate.authenticate(_passwordless(gate, device).access_token)
    with pytest.raises(StepUpRequired):  # removal asks for a recent login
        gate.remove_passkey(_stale(me), key_id)
    gate.remove_passkey(me, key_id)
    with pytest.raises(NotFound):
        gate.remove_passkey(me, key_id)
    with pytest.raises(BadCredentials) as removed:
        _passwordless(gate, device)
    gate.update_user("bob", enabled=False)
    with pytest.raises(BadCredentials) as disabled:
        _passwordless(gate, other)
    assert str(removed.value) == str(disabled.value) == "the passkey was not accepted"
    gate.login("alice", PW)  # her last factor gone: the password alone, no second step


def test_a_passkey_is_registered_once(gate: Gate) -> None:
    device = SoftAuthenticator(ORIGIN)
    me = _me(gate)
    first = gate.begin_passkey(me)
    answer = device.create(first)
    gate.add_passkey(me, first["passkey_token"], answer)
    second = gate.begin_passkey(me)
    assert [c["id"] for c in second["publicKey"]["excludeCredentials"]] == [answer["id"]]
    # The same answer again: its token is spent, and with a new token's challenge the
    # authenticator's old answer does not verify either.
    with pytest.raises(InvalidToken):
        gate.add_passkey(me, first["passkey_token"], answer)
    with pytest.raises(BadCredentials):
        gate.add_passkey(me, second["passkey_token"], answer)
    assert len(gate.passkeys(me)) == 1


def test_the_second_steps_passkey_challenge_works_once(gate: Gate) -> None:
    device = SoftAuthenticator(ORIGIN, counts=False)
    _register(gate, device)
    asked = _second_step(gate)
    answer = device.get(asked.passkey)  # type: ignore[arg-type]
    gate.complete_login(asked.challenge, passkey=answer)
    with pytest.raises(InvalidToken):
        gate.complete_login(asked.challenge, passkey=answer)


def test_a_second_step_without_passkeys_takes_no_passkey(gate: Gate) -> None:
    me = _me(gate)
    # Recovery codes only through a passkey; a TOTP user has no WebAuthn challenge.
    import pyotp

    enrolment = gate.begin_totp(me)
    gate.confirm_totp(me, pyotp.TOTP(enrolment.secret).now())
    asked = _second_step(gate)
    assert "passkey" not in asked.methods and asked.passkey is None
    with pytest.raises(ValidationError):
        gate.complete_login(asked.challenge, passkey={"id": "x", "response": {}})


def test_wrong_passkeys_count_toward_the_lock_out(events: list[AuditEvent]) -> None:
    gate = _gate(events, max_login_attempts=10)
    device, stranger = SoftAuthenticator(ORIGIN), SoftAuthenticator(ORIGIN)
    _register(gate, device)
    _register(gate, stranger, "bob", "bob password 12")  # a passkey, but bob's
    asked = _second_step(gate)
    for _ in range(10):
        answer = stranger.get(asked.passkey, credential_id=next(iter(_ids(stranger))))  # type: ignore[arg-type]
        with pytest.raises(BadCredentials):
            gate.complete_login(asked.challenge, passkey=answer)
    with pytest.raises(AccountLocked):
        gate.complete_login(asked.challenge, passkey=device.get(asked.passkey))  # type: ignore[arg-type]
    with pytest.raises(AccountLocked):
        _passwordless(gate, device)
    assert "lockout" in [e.event for e in events]


def test_an_admin_reset_ends_the_passkeys(gate: Gate, events: list[AuditEvent]) -> None:
    device = SoftAuthenticator(ORIGIN)
    _register(gate, device)
    gate.reset_mfa("alice", actor="root")
    assert isinstance(gate.login("alice", PW), TokenPair)
    with pytest.raises(BadCredentials):
        _passwordless(gate, device)
    assert any(e.event == "mfa_reset" and e.actor == "root" for e in events)


def test_passkeys_need_a_relying_party(events: list[AuditEvent]) -> None:
    gate = Gate(hasher=cheap_hasher(), store="memory://", secret_key=SECRET)
    gate.create_user("alice", PW)
    with pytest.raises(ConfigError, match="AUTHGATE_PASSKEY_RP_ID"):
        gate.begin_passkey(_me(gate))
    with pytest.raises(ConfigError):
        Gate(store="memory://", secret_key=SECRET, passkey_rp_id="https://example.com")
    with pytest.raises(ConfigError):
        Gate(store="memory://", secret_key=SECRET, passkey_origins=("https://example.com",))
    with pytest.raises(ConfigError):
        Gate(
            store="memory://",
            secret_key=SECRET,
            passkey_rp_id="example.com",
            passkey_origins=("example.com",),
        )


def test_an_account_keeps_a_bounded_number_of_passkeys(gate: Gate) -> None:
    from authgate.flows.passkeys import MAX_PASSKEYS

    device = SoftAuthenticator(ORIGIN)
    me = _me(gate)
    for _ in range(MAX_PASSKEYS):
        options = gate.begin_passkey(me)
        gate.add_passkey(me, options["passkey_token"], device.create(options))
    with pytest.raises(Conflict):
        gate.begin_passkey(me)


def test_a_store_dump_holds_public_keys_only(gate: Gate) -> None:
    device = SoftAuthenticator(ORIGIN)
    _register(gate, device)
    user = gate.store.get_user("alice")
    assert user is not None
    kept = json.loads(user.factors)["passkeys"][0]
    assert set(kept) == {
        "id", "public_key", "sign_count", "name", "transports", "backed_up", "aaguid",
        "created_at", "last_used_at",
    }  # fmt: skip
    private = next(iter(device.credentials.values())).private_key
    from cryptography.hazmat.primitives import serialization

    der = private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    assert base64.urlsafe_b64encode(der).decode()[:40] not in user.factors


def _ids(device: SoftAuthenticator) -> Iterator[str]:
    for credential_id in device.credentials:
        yield base64.urlsafe_b64encode(credential_id).rstrip(b"=").decode()


def _stale(identity: Identity) -> Identity:
    """`identity` as if its login were an hour old."""
    from dataclasses import replace

    claims = {**identity.claims, "auth_time": int(identity.claims["auth_time"]) - 3600}
    return replace(identity, claims=claims)


# -- over HTTP ---------------------------------------------------------------------------------


def _nothing(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"nothing here"]


@pytest.fixture
def client(gate: Gate) -> Iterator[httpx.Client]:
    app = AuthGateWSGIMiddleware(_nothing, gate, api=True)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url=ORIGIN) as made:
        yield made


def _bearer(client: httpx.Client, username: str = "alice", password: str = PW) -> dict[str, str]:
    pair = client.post("/auth/login", json={"username": username, "password": password}).json()
    return {"Authorization": f"Bearer {pair['access_token']}"}


MALFORMED: list[Any] = [
    {},
    {"id": "x"},
    {"id": "a" * 43, "response": {}},
    {"id": "a" * 43, "rawId": "a" * 43, "type": "public-key", "response": {"clientDataJSON": 7}},
    {"id": "a" * 43, "rawId": "a" * 43, "type": "public-key",
     "response": {"clientDataJSON": "!!!", "authenticatorData": "@@", "signature": "",
                  "userHandle": "%%"}},
    {"id": "a" * 43, "rawId": "b" * 43, "type": "public-key",
     "response": {"clientDataJSON": "e30", "authenticatorData": "AAAA", "signature": "AA"}},
    {"id": "a" * 43, "rawId": "a" * 43, "type": "public-key",
     "response": {"clientDataJSON": "e30", "attestationObject": "oWNmbXRk", "transports": [1]}},
    {"id": ["a"], "response": {"userHandle": ["x"]}},
    {"id": "a" * 43, "response": {"x": "y" * 40_000}},
]  # fmt: skip


@pytest.mark.parametrize("credential", MALFORMED)
def test_a_malformed_answer_is_a_4xx_and_changes_nothing(
    client: httpx.Client, gate: Gate, credential: Any
) -> None:
    device = SoftAuthenticator(ORIGIN)
    _register(gate, device)
    before = gate.store.get_user("alice"), gate.store.get_user("bob")
    options = client.post("/auth/passkeys/login/options", json={}).json()
    answer = client.post(
        "/auth/passkeys/login",
        json={"passkey_token": options["passkey_token"], "credential": credential},
    )
    assert answer.status_code in (400, 401), answer.text
    assert answer.json()["error"] in ("invalid_request", "invalid_credentials", "invalid_token")
    bob = _bearer(client, "bob", "bob password 12")  # and as a registration's answer
    creating = client.post("/auth/passkeys/options", headers=bob, json={})
    made = client.post(
        "/auth/passkeys",
        headers=bob,
        json={"passkey_token": creating.json()["passkey_token"], "credential": credential},
    )
    assert made.status_code in (400, 401), made.text
    assert (gate.store.get_user("alice"), gate.store.get_user("bob")) == before


def test_the_http_ceremonies_and_their_refusals(client: httpx.Client, gate: Gate) -> None:
    device = SoftAuthenticator(ORIGIN)
    me = _bearer(client)
    assert client.get("/auth/passkeys", headers=me).json() == {"passkeys": []}
    creating = client.post("/auth/passkeys/options", headers=me, json={}).json()
    added = client.post(
        "/auth/passkeys",
        headers=me,
        json={"passkey_token": creating["passkey_token"], "credential": device.create(creating),
              "name": "phone"},
    )  # fmt: skip
    assert added.status_code == 201 and len(added.json()["recovery_codes"]) == 10
    assert client.get("/auth/mfa", headers=me).json()["passkeys"] == 1
    # The password step asks for the passkey, and says how.
    step = client.post("/auth/login", json={"username": "alice", "password": PW})
    assert step.status_code == 403 and step.json()["methods"] == ["recovery_code", "passkey"]
    token = step.json()["mfa_token"]
    both = client.post(
        "/auth/mfa", json={"mfa_token": token, "code": "x" * 8, "passkey": {"id": "y"}}
    )
    assert both.status_code == 400  # one proof, not two
    options = client.post("/auth/mfa/passkey", json={"mfa_token": token})
    assert options.json()["publicKey"] == step.json()["passkey"]["publicKey"]
    done = client.post(
        "/auth/mfa", json={"mfa_token": token, "passkey": device.get(options.json())}
    )
    assert done.status_code == 200 and done.json()["access_token"]
    # A login by passkey alone; an unknown option is refused.
    assert client.post("/auth/passkeys/login/options", json={"session": "x"}).status_code == 400
    # Cookie sessions are off here: a browser session cannot be asked for.
    assert (
        client.post("/auth/passkeys/login/options", json={"session": "cookie"}).status_code == 400
    )
    login = client.post("/auth/passkeys/login/options", json={}).json()
    alone = client.post(
        "/auth/passkeys/login",
        json={"passkey_token": login["passkey_token"], "credential": device.get(login)},
    )
    assert alone.status_code == 200
    assert alone.headers["cache-control"] == "no-store"
    # Removing it takes a recent login; the id must be one of hers.
    key_id = added.json()["passkey"]["id"]
    fresh = {"Authorization": f"Bearer {alone.json()['access_token']}"}
    bob = _bearer(client, "bob", "bob password 12")
    assert client.delete(f"/auth/passkeys/{key_id}", headers=bob).status_code == 404
    assert client.delete(f"/auth/passkeys/{key_id}", headers=fresh).status_code == 204
    assert client.get("/auth/passkeys", headers=fresh).json() == {"passkeys": []}


def test_passkey_routes_are_404_until_configured() -> None:
    gate = Gate(hasher=cheap_hasher(), store="memory://", secret_key=SECRET)
    app = AuthGateWSGIMiddleware(_nothing, gate, api=True)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url=ORIGIN) as client:
        answer = client.post("/auth/passkeys/login/options", json={})
        assert (
            answer.status_code == 404 and answer.json()["detail"] == "passkeys are not configured"
        )


def test_a_role_that_requires_a_factor_can_enrol_a_passkey(events: list[AuditEvent]) -> None:
    gate = _gate(events, mfa_roles=("viewer",))
    with pytest.raises(SecondFactorRequired) as asked:
        gate.login("alice", PW)
    assert asked.value.methods == ["enrol_totp", "enrol_passkey"]
    challenge = asked.value.challenge
    device = SoftAuthenticator(ORIGIN)
    app = AuthGateWSGIMiddleware(_nothing, gate, api=True)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url=ORIGIN) as client:
        options = client.post("/auth/passkeys/options", json={"mfa_token": challenge}).json()
        done = client.post(
            "/auth/passkeys",
            json={"mfa_token": challenge, "passkey_token": options["passkey_token"],
                  "credential": device.create(options)},
        )  # fmt: skip
        assert done.status_code == 200, done.text
        body = done.json()
        assert body["access_token"] and len(body["recovery_codes"]) == 10 and body["passkey"]
        identity = gate.authenticate(body["access_token"])
        assert identity.claims["amr"] == ("pwd", "hwk", "mfa")
    # Enrolled: the same challenge enrols nothing more.
    with pytest.raises(InvalidToken):
        gate.complete_login(challenge, "123456")


def test_an_account_with_a_passkey_can_add_an_authenticator_app(gate: Gate) -> None:
    import pyotp

    device = SoftAuthenticator(ORIGIN)
    _register(gate, device)
    me = gate.authenticate(_passwordless(gate, device).access_token)
    enrolment = gate.begin_totp(me)
    gate.confirm_totp(me, pyotp.TOTP(enrolment.secret).now())
    assert _second_step(gate).methods == ["totp", "recovery_code", "passkey"]
    with pytest.raises(Conflict):  # a second app: an admin resets the first
        gate.begin_totp(me)


def test_an_id_that_is_no_base64url_is_a_400_and_takes_no_guess(
    client: httpx.Client, gate: Gate
) -> None:
    device = SoftAuthenticator(ORIGIN)
    _register(gate, device)
    alice = gate.store.get_user("alice")
    assert alice is not None
    lockout = gate.rules.lockout
    for odd in ("é" * 20, "a" * 10, "a b" * 10):
        options = client.post("/auth/passkeys/login/options", json={}).json()
        answer = device.get(options)
        answer["id"] = odd
        refused = client.post(
            "/auth/passkeys/login",
            json={"passkey_token": options["passkey_token"], "credential": answer},
        )
        assert refused.status_code == 400, refused.text
    assert gate.store.get_counter(lockout.key("alice")) == 0  # no guess reserved, none kept
    fresh = {"Authorization": f"Bearer {_passwordless(gate, device).access_token}"}
    assert client.delete("/auth/passkeys/%C3%A9", headers=fresh).status_code == 404
