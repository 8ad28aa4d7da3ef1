"""argon2id hashing, verification and the password policy."""

from __future__ import annotations

import pytest

from authgate.errors import InvalidPassword
from authgate.passwords import Argon2Params, PasswordHasher, PasswordPolicy


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


def test_dummy_verify_costs_a_verification(hasher: PasswordHasher) -> None:
    hasher.dummy_verify("anything")  # returns nothing, raises nothing
    assert hasher.verify("", "anything") is False


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
