"""argon2id hashing, verification and the password policy; hashes other libraries
made, verified and replaced by argon2id at login (`authgate.password_formats`)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
from collections.abc import Callable, Iterator
from typing import Any

import argon2
import bcrypt
import pytest
from argon2.exceptions import InvalidHashError, VerifyMismatchError

from authgate.errors import BadCredentials, InvalidPassword
from authgate.flows.drive import _cpu, arun, run
from authgate.flows.login import login
from authgate.flows.ops import Call, DeriveScram, Hash, Verify
from authgate.flows.users import create_user, password_fields
from authgate.gate import AsyncGate, Gate
from authgate.identity import Client
from authgate.passwords import Argon2Params, LegacyHashes, PasswordHasher, PasswordPolicy
from authgate.stores import open_async_store
from authgate.stores.memory import MemoryStore
from authgate.testing import cheap_hasher
from authgate.tokens import TokenPair
from authgate.users import User
from conftest import SECRET, AsyncFace


def test_default_parameters_are_rfc_9106_low_memory() -> None:
    params = Argon2Params()
    assert (params.time_cost, params.memory_cost, params.parallelism) == (3, 65536, 4)
    hashed = PasswordHasher().hash("correct horse battery")
    assert hashed.startswith("$argon2id$v=19$m=65536,t=3,p=4$")


def test_hash_verifies_and_wrong_password_does_not(hasher: PasswordHasher) -> None:
    hashed = hasher.hash("correct horse")
    assert "correct horse" not in hashed
    assert hasher.verify(hashed, "correct horse")
    assert not hasher.verify(hashed, "correct horsE")
    assert not hasher.verify(hashed, "")


@pytest.mark.parametrize(
    "corrupt", ["", "not-a-hash", "$argon2id$v=19$m=8,t=1,p=1$bad", "$2b$12$x"]
)
def test_corrupt_hash_is_a_wrong_password_not_an_exception(
    hasher: PasswordHasher, corrupt: str
) -> None:
    assert hasher.verify(corrupt, "whatever1") is False


def test_needs_rehash_when_parameters_change(hasher: PasswordHasher) -> None:
    hashed = hasher.hash("correct horse")
    assert not hasher.needs_rehash(hashed)
    stronger = PasswordHasher(Argon2Params(time_cost=2, memory_cost=16, parallelism=1))
    assert stronger.needs_rehash(hashed)
    assert stronger.verify(hashed, "correct horse")  # old hashes still verify
    assert stronger.needs_rehash("garbage")


class Argon2Verifications:
    """Records every call into argon2-cffi's `PasswordHasher.verify` (the real one runs):
    the parameters of the hash (None when it is not a valid argon2 hash), the password
    and how the real verification ended."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[argon2.Parameters | None, str, str]] = []
        real = argon2.PasswordHasher.verify

        def verify(argon: argon2.PasswordHasher, hash: str | bytes, password: str | bytes) -> Any:
            text = hash if isinstance(hash, str) else hash.decode()
            secret = password if isinstance(password, str) else password.decode()
            try:
                params: argon2.Parameters | None = argon2.extract_parameters(text)
            except (InvalidHashError, ValueError):
                params = None
            try:
                result = real(argon, hash, password)
            except VerifyMismatchError:
                self.calls.append((params, secret, "mismatch"))
                raise
            except Exception as err:
                self.calls.append((params, secret, type(err).__name__))
                raise
            self.calls.append((params, secret, "match"))
            return result

        monkeypatch.setattr(argon2.PasswordHasher, "verify", verify)


def _same_cost(found: argon2.Parameters | None, params: Argon2Params) -> bool:
    return (
        found is not None
        and found.type is argon2.Type.ID
        and (found.time_cost, found.memory_cost, found.parallelism)
        == (params.time_cost, params.memory_cost, params.parallelism)
        and found.hash_len == params.hash_len
        and found.salt_len == params.salt_len
    )


def test_dummy_verify_runs_one_real_argon2_verification(
    hasher: PasswordHasher, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = Argon2Verifications(monkeypatch)
    hasher.dummy_verify("anything 1")  # returns nothing, raises nothing
    assert len(seen.calls) == 1
    params, password, outcome = seen.calls[0]
    # A full verification of the presented password against a well-formed hash made
    # with the hasher's own parameters: the cost of a wrong password, not a shortcut.
    assert (password, outcome) == ("anything 1", "mismatch")
    assert _same_cost(params, hasher.params)

    assert hasher.verify("", "anything 2") is False  # no hash: a dummy verification
    assert len(seen.calls) == 2
    assert seen.calls[1][1:] == ("anything 2", "mismatch")
    assert _same_cost(seen.calls[1][0], hasher.params)

    real = hasher.hash("correct horse")
    assert hasher.verify(real, "wrong horse") is False
    assert seen.calls[2][1:] == ("wrong horse", "mismatch")
    assert seen.calls[2][0] == seen.calls[0][0]  # same cost as the dummy


def test_dummy_verify_follows_the_hasher_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    stronger = Argon2Params(time_cost=2, memory_cost=16, parallelism=2)
    seen = Argon2Verifications(monkeypatch)
    PasswordHasher(stronger).dummy_verify("anything 1")
    assert len(seen.calls) == 1
    assert _same_cost(seen.calls[0][0], stronger)
    assert seen.calls[0][2] == "mismatch"


@pytest.mark.parametrize(
    ("username", "password"),
    [("alice", "wrong password"), ("nobody", "any password"), ("bad name!", "any password")],
    ids=["wrong-password", "unknown-user", "invalid-username"],
)
def test_every_failed_login_costs_exactly_one_verification(
    monkeypatch: pytest.MonkeyPatch, username: str, password: str
) -> None:
    gate = Gate(store="memory://", hasher=cheap_hasher(), secret_key=SECRET)
    gate.create_user("alice", "correct horse battery")
    seen = Argon2Verifications(monkeypatch)
    with pytest.raises(BadCredentials):
        gate.login(username, password)
    assert [(p, outcome) for _, p, outcome in seen.calls] == [(password, "mismatch")]
    assert _same_cost(seen.calls[0][0], Argon2Params.cheap())


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short", "at least 8 characters"),
        ("x" * 4097, "at most 4096 bytes"),
        ("é" * 2049, "at most 4096 bytes"),
        ("nul\x00inside", "NUL"),
    ],
)
def test_policy_refuses_with_clear_messages(
    hasher: PasswordHasher, password: str, message: str
) -> None:
    with pytest.raises(InvalidPassword, match=message):
        hasher.hash(password)


def test_policy_is_configurable() -> None:
    policy = PasswordPolicy(min_length=12, max_bytes=64)
    hasher = PasswordHasher(Argon2Params.cheap(), policy)
    with pytest.raises(InvalidPassword, match="at least 12"):
        hasher.hash("elevenchars")
    assert hasher.verify(hasher.hash("twelve chars"), "twelve chars")


def test_repr_holds_no_secret(hasher: PasswordHasher) -> None:
    assert "PasswordHasher(" in repr(hasher)


# -- hashes other libraries made: verified, then replaced at login --------------------------


def test_rehash_skips_the_policy_that_hash_applies(hasher: PasswordHasher) -> None:
    with pytest.raises(InvalidPassword, match="at least 8"):
        hasher.hash("abcd")
    rehashed = hasher.rehash("abcd")
    assert rehashed.startswith("$argon2id$")
    assert not hasher.needs_rehash(rehashed)
    assert hasher.verify(rehashed, "abcd")


def test_only_a_rehash_at_login_skips_the_policy(hasher: PasswordHasher) -> None:
    store = MemoryStore()
    with pytest.raises(InvalidPassword):
        run(password_fields("abcd"), store, hasher)
    fields = run(password_fields("abcd", rehash=True), store, hasher)
    assert hasher.verify(fields["password_hash"], "abcd")
    assert fields["scram_credentials"].startswith("SCRAM-SHA-256$")

    async def on_the_async_driver() -> dict[str, Any]:
        astore = open_async_store("memory://")
        with pytest.raises(InvalidPassword):
            await arun(password_fields("abcd"), astore, hasher)
        return await arun(password_fields("abcd", rehash=True), astore, hasher)

    assert hasher.verify(asyncio.run(on_the_async_driver())["password_hash"], "abcd")


def test_the_login_flow_asks_for_a_rehash_and_only_there() -> None:
    hasher = cheap_hasher()
    rules = Gate(store="memory://", hasher=hasher, secret_key=SECRET).rules
    bob = User.new("bob", password_hash=_bcrypt("abcd"))
    flow = login(rules, "bob", "abcd", Client())
    hashes: list[Hash] = []
    op = next(flow)
    stored = [bob]  # what the store holds: the rehashed user once it is written
    with contextlib.suppress(StopIteration):
        while True:
            if isinstance(op, Hash):
                hashes.append(op)
            if isinstance(op, Call) and op.method == "update_user":
                stored[0] = op.args[0]
            op = flow.send(_answer(op, stored[0], hasher))
    assert hashes == [Hash("abcd", rehash=True)]
    assert "abcd" not in repr(hashes[0])
    created = create_user("carol", "abcd")
    assert next(created) == Hash("abcd")  # a new password: the policy applies


def _answer(op: Any, bob: User, hasher: PasswordHasher) -> Any:
    """The store and the CPU work of one login, answered by hand."""
    if isinstance(op, Call):
        if op.method == "get_user":
            return bob
        if op.method == "incr":
            return 1
        if op.method in ("update_user", "create_session"):
            return op.args[0]
        return {"list_sessions": [], "get_counter": 0, "counter_ttl": 0.0}.get(op.method)
    if isinstance(op, (Verify, Hash, DeriveScram)):
        return _cpu(op, hasher)
    return None


def _bcrypt(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()


def _django_pbkdf2(password: str) -> str:
    derived = hashlib.pbkdf2_hmac("sha256", password.encode(), b"NaClNaClNaCl", 1000)
    return f"pbkdf2_sha256$1000$NaClNaClNaCl${base64.b64encode(derived).decode()}"


FS_SALT = "flask-security-salt"


def _flask_security_bcrypt(password: str) -> str:
    prehash = hmac.new(FS_SALT.encode(), password.encode(), hashlib.sha512).digest()
    return _bcrypt(base64.b64encode(prehash).decode()[:72])


@pytest.fixture(params=["sync", "async"])
def gates(request: pytest.FixtureRequest) -> Iterator[Callable[[LegacyHashes], tuple[Any, Any]]]:
    """Make a gate on a memory store (and its store) with a cheap hasher reading
    `legacy` hashes; an async one is driven from sync calls."""
    loop = asyncio.new_event_loop()

    def make(legacy: LegacyHashes) -> tuple[Any, Any]:
        hasher = PasswordHasher(Argon2Params.cheap(), legacy=legacy)
        if request.param == "sync":
            gate = Gate(store="memory://", hasher=hasher, secret_key=SECRET)
            return gate, gate.store
        agate = AsyncGate(store="memory://", hasher=hasher, secret_key=SECRET)
        return AsyncFace(agate, loop), AsyncFace(agate.store, loop)

    yield make
    loop.close()


FOREIGN = [
    pytest.param(_bcrypt, LegacyHashes(), id="bcrypt"),
    pytest.param(_django_pbkdf2, LegacyHashes(), id="django-pbkdf2_sha256"),
    pytest.param(
        _flask_security_bcrypt, LegacyHashes(flask_security_salt=FS_SALT), id="flask-security"
    ),
]


@pytest.mark.parametrize(("make_hash", "legacy"), FOREIGN)
@pytest.mark.parametrize("password", ["legacy password 1", "abcd"], ids=["long", "short"])
def test_a_user_with_another_librarys_hash_logs_in_and_leaves_with_argon2id(
    gates: Callable[[LegacyHashes], tuple[Any, Any]],
    make_hash: Callable[[str], str],
    legacy: LegacyHashes,
    password: str,
) -> None:
    gate, store = gates(legacy)
    original = make_hash(password)
    store.create_user(User.new("bob", password_hash=original))

    with pytest.raises(BadCredentials):
        gate.login("bob", password + "!")
    assert store.get_user("bob").password_hash == original  # a failure changes nothing

    assert isinstance(gate.login("bob", password), TokenPair)
    user = store.get_user("bob")
    assert user.password_hash.startswith("$argon2id$")
    assert not gate.hasher.needs_rehash(user.password_hash)
    assert user.scram_credentials.startswith("SCRAM-SHA-256$")
    # "abcd" is below today's minimum, and still the password that matched
    assert isinstance(gate.login("bob", password), TokenPair)
    with pytest.raises(BadCredentials):
        gate.login("bob", password + "!")
    with pytest.raises(BadCredentials):
        gate.login("bob", "legacy password 2")
    assert store.get_user("bob").password_hash == user.password_hash  # rehashed once


def test_with_legacy_hashes_off_such_a_user_cannot_log_in(
    gates: Callable[[LegacyHashes], tuple[Any, Any]],
) -> None:
    gate, store = gates(LegacyHashes(enabled=False))
    original = _bcrypt("legacy password 1")
    store.create_user(User.new("bob", password_hash=original))
    with pytest.raises(BadCredentials):
        gate.login("bob", "legacy password 1")
    assert store.get_user("bob").password_hash == original


@pytest.mark.parametrize(
    ("username", "password"),
    [("alice", "wrong password"), ("nobody", "any password"), ("bad name!", "any password")],
    ids=["wrong-password", "unknown-user", "invalid-username"],
)
def test_a_flask_security_salt_adds_no_verification_for_argon2id_users(
    monkeypatch: pytest.MonkeyPatch, username: str, password: str
) -> None:
    hasher = PasswordHasher(Argon2Params.cheap(), legacy=LegacyHashes(flask_security_salt="s"))
    gate = Gate(store="memory://", hasher=hasher, secret_key=SECRET)
    gate.create_user("alice", "correct horse battery")
    seen = Argon2Verifications(monkeypatch)
    with pytest.raises(BadCredentials):
        gate.login(username, password)
    assert [(p, outcome) for _, p, outcome in seen.calls] == [(password, "mismatch")]
    assert _same_cost(seen.calls[0][0], Argon2Params.cheap())


def test_a_failed_login_against_a_bcrypt_user_costs_one_bcrypt_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate = Gate(store="memory://", hasher=cheap_hasher(), secret_key=SECRET)
    gate.store.create_user(User.new("bob", password_hash=_bcrypt("legacy password 1")))
    seen = Argon2Verifications(monkeypatch)
    checked: list[bytes] = []
    real = bcrypt.hashpw

    def spy(secret: bytes, salt: bytes) -> bytes:
        checked.append(secret)
        return real(secret, salt)

    monkeypatch.setattr(bcrypt, "hashpw", spy)
    with pytest.raises(BadCredentials):
        gate.login("bob", "wrong password")
    assert (checked, seen.calls) == ([b"wrong password"], [])
