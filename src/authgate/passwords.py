"""Password hashing (argon2id), the password policy, and the SCRAM-SHA-256 credentials
derived from a password (the handshake itself is `authgate.scram`).  Hashes other
libraries made are read by `authgate.password_formats`.

The plaintext lives only in the arguments of these calls: it is never stored, logged,
or kept on an object.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

from . import password_formats
from .errors import InvalidPassword
from .password_formats import LegacyHashes

__all__ = [
    "Argon2Params",
    "LegacyHashes",
    "PasswordHasher",
    "PasswordPolicy",
    "ScramCredentials",
    "derive_credentials",
    "scram_keys",
]


@dataclass(frozen=True, slots=True)
class Argon2Params:
    """argon2id cost parameters.  The default is RFC 9106's second recommended option
    (t=3, m=64 MiB, p=4), the one for machines that cannot spare 2 GiB per hash."""

    time_cost: int = 3
    memory_cost: int = 65536  # KiB
    parallelism: int = 4
    hash_len: int = 32
    salt_len: int = 16

    @classmethod
    def cheap(cls) -> Argon2Params:
        """Deliberately weak parameters for tests only: ~1 ms per hash."""
        return cls(time_cost=1, memory_cost=8, parallelism=1, hash_len=16, salt_len=8)


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    """What a new password must satisfy."""

    min_length: int = 8
    max_bytes: int = 4096

    def check(self, password: str) -> None:
        """Raise `InvalidPassword` with a message saying what is wrong, or return."""
        if not isinstance(password, str):
            raise InvalidPassword("password must be a string", field="password")
        if len(password) < self.min_length:
            raise InvalidPassword(
                f"password must be at least {self.min_length} characters long",
                field="password",
            )
        if len(password.encode("utf-8", "surrogatepass")) > self.max_bytes:
            raise InvalidPassword(
                f"password must be at most {self.max_bytes} bytes long", field="password"
            )
        if "\x00" in password:
            raise InvalidPassword("password must not contain NUL characters", field="password")


class PasswordHasher:
    """Hash passwords with argon2id; verify them, and the hashes other libraries made
    (`LegacyHashes`), in constant time.

    `dummy_verify` runs a full verification against a hash of a random password with
    the same parameters, so an unknown username costs what a wrong password costs.
    """

    __slots__ = ("_argon", "_dummy", "_dummy_lock", "_formats", "legacy", "params", "policy")

    def __init__(
        self,
        params: Argon2Params | None = None,
        policy: PasswordPolicy | None = None,
        legacy: LegacyHashes | None = None,
    ) -> None:
        self.params = params or Argon2Params()
        self.policy = policy or PasswordPolicy()
        self.legacy = legacy or LegacyHashes()
        p = self.params
        self._argon = argon2.PasswordHasher(
            time_cost=p.time_cost,
            memory_cost=p.memory_cost,
            parallelism=p.parallelism,
            hash_len=p.hash_len,
            salt_len=p.salt_len,
            type=argon2.Type.ID,
        )
        # The argon2 limits never refuse a hash made with this hasher's own parameters.
        self._formats = dataclasses.replace(
            self.legacy,
            max_argon2_cost=max(self.legacy.max_argon2_cost, p.time_cost * p.memory_cost),
            max_argon2_parallelism=max(self.legacy.max_argon2_parallelism, p.parallelism),
        )
        self._dummy: str | None = None
        self._dummy_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PasswordHasher({self.params!r}, {self.policy!r}, {self.legacy!r})"

    def hash(self, password: str) -> str:
        """Check `password` against the policy and return its argon2id hash."""
        self.policy.check(password)
        return self._argon.hash(password)

    def rehash(self, password: str) -> str:
        """The argon2id hash of a password that has just matched its stored hash, with
        no policy check: a rule added since the password was set (a longer minimum) must
        not turn a correct login into a failure."""
        return self._argon.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        """True when `password` matches `password_hash`.

        A hash made with this hasher's parameters costs one argon2 verification; any
        other goes through `authgate.password_formats` (argon2 of other parameters, and
        unless ``legacy.enabled`` is False, bcrypt, Django's and passlib's formats).
        A corrupt, foreign or too costly hash is a wrong password, never an exception:
        argon2-cffi's `InvalidHashError` is a `ValueError` outside its own exception tree.
        """
        if not password_hash:
            self.dummy_verify(password)
            return False
        if self.needs_rehash(password_hash):
            return password_formats.verify(password_hash, password, self._formats)
        try:
            return self._argon.verify(password_hash, password)
        except (VerificationError, InvalidHashError, ValueError):
            return False

    def derive_scram(self, password: str, iterations: int = 10_000) -> str:
        """SCRAM-SHA-256 credentials for `password` (RFC 5802, 7677): never the password,
        only ``SCRAM-SHA-256$<iterations>:<salt>$<stored key>:<server key>`` (base64)."""
        return derive_credentials(password, iterations)

    def needs_rehash(self, password_hash: str) -> bool:
        """True unless the hash is argon2id made with the current parameters."""
        try:
            return self._argon.check_needs_rehash(password_hash)
        except (InvalidHashError, ValueError):
            return True

    def dummy_verify(self, password: str) -> None:
        """Spend the time of one verification without revealing anything."""
        with contextlib.suppress(VerificationError, InvalidHashError, ValueError):
            self._argon.verify(self._dummy_hash(), password)

    def _dummy_hash(self) -> str:
        with self._dummy_lock:
            if self._dummy is None:
                self._dummy = self._argon.hash(secrets.token_urlsafe(32))
            return self._dummy


# -- SCRAM-SHA-256 credentials (RFC 5802, 7677) ----------------------------------------


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def scram_keys(password: str, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
    """The stored key and server key of RFC 5802 for `password`."""
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return stored_key, server_key


def derive_credentials(password: str, iterations: int = 10_000) -> str:
    """``SCRAM-SHA-256$<iterations>:<salt>$<stored key>:<server key>`` for a password."""
    salt = secrets.token_bytes(16)
    stored_key, server_key = scram_keys(password, salt, iterations)
    return f"SCRAM-SHA-256${iterations}:{_b64(salt)}${_b64(stored_key)}:{_b64(server_key)}"


@dataclass(frozen=True, slots=True)
class ScramCredentials:
    """A user's stored SCRAM-SHA-256 credentials, parsed."""

    iterations: int
    salt: bytes
    stored_key: bytes
    server_key: bytes

    @classmethod
    def parse(cls, text: str) -> ScramCredentials | None:
        """Credentials from their stored form; None for anything malformed."""
        try:
            scheme, params, keys = text.split("$")
            iterations, salt = params.split(":")
            stored, server = keys.split(":")
            if scheme != "SCRAM-SHA-256":
                return None
            return cls(
                int(iterations),
                base64.b64decode(salt),
                base64.b64decode(stored),
                base64.b64decode(server),
            )
        except ValueError:
            return None

    @classmethod
    def fake(cls, secret: bytes, username: str) -> ScramCredentials:
        """Stable made-up credentials for an unknown user: same shape, nothing matches."""
        seed = hmac.new(secret, b"scram-fake:" + username.encode(), hashlib.sha256).digest()
        return cls(10_000, seed[:16], hashlib.sha256(seed).digest(), seed)
