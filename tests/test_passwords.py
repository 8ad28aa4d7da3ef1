"""argon2id hashing, verification and the password policy."""

from __future__ import annotations

from typing import Any

import argon2
import pytest
from argon2.exceptions import InvalidHashError, VerifyMismatchError

from authgate.errors import BadCredentials, InvalidPassword
from authgate.gate import Gate
from authgate.passwords import Argon2Params, PasswordHasher, PasswordPolicy
from authgate.testing import cheap_hasher
from conftest import SECRET


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
