"""Password hashes other libraries stored, verified so that users moved from
fastapi-users, Flask-Security or Django keep their passwords (the login flow then
replaces each hash with an argon2id one: `authgate.flows.login`).

Accepted, with what made them:

- bcrypt ``$2a$``, ``$2b$``, ``$2y$`` (fastapi-users through pwdlib or passlib,
  Flask-Security before 5), through the `bcrypt` package;
- argon2 of any variant and parameters, ``$argon2id$``, ``$argon2i$``, ``$argon2d$``
  (pwdlib, Flask-Security 5), through argon2-cffi;
- Django's ``pbkdf2_sha256$``, ``pbkdf2_sha1$``, ``argon2$argon2…$``,
  ``bcrypt_sha256$$2b$…`` (bcrypt of the hex SHA-256 of the password) and
  ``bcrypt$$2b$…``;
- passlib's ``$pbkdf2-sha256$`` and ``$pbkdf2-sha512$`` (Flask-Security's
  ``pbkdf2_sha512``);
- with `LegacyHashes.flask_security_salt`, Flask-Security's pre-hash: the hash of
  ``base64(HMAC-SHA512(SECURITY_PASSWORD_SALT, password))`` instead of the password.

PBKDF2 is computed with the standard library's `hashlib.pbkdf2_hmac`: its formats are a
digest name, an iteration count, a salt and a base64 digest, simple enough that no
maintained library is needed to read them (passlib, the one that read them, is
unmaintained).

Everything else (md5 or sha1 digests, plaintext, ``$1$``/``$5$``/``$6$`` crypt, an
unknown prefix, a malformed string) is a wrong password, never an exception; so is a
hash asking for more work than `LegacyHashes` allows, so a stored hash cannot make a
login take minutes.  Digests are compared with `hmac.compare_digest`.

Timing: a login against an unknown user, and a wrong password against an argon2id hash
made with the hasher's parameters, each cost one argon2 verification with those
parameters (`PasswordHasher.dummy_verify`).  A hash in another format costs what its
own format and parameters cost (a bcrypt cost-12 check takes about 0.2 s; with a
Flask-Security salt, a failed check costs two).  Someone timing failed logins can
therefore tell an account still holding a foreign hash from an unknown one: the gap
reveals that such an account exists, and its hash format, though nothing of its
password.  Accounts already on argon2id stay indistinguishable from unknown ones, and
each account leaves the gap at its first successful login, when its hash is replaced.
Django accepts the same gap when its hasher changes (``check_password``).  Where that
matters, import the users disabled until they reset their passwords.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import argon2
import bcrypt
from argon2.exceptions import InvalidHashError, VerificationError

from .errors import ConfigError

__all__ = ["LegacyHashes", "NormalForm", "verify"]

NormalForm = Literal["NFC", "NFD", "NFKC", "NFKD"]

# A secret in, whether it matches out; made once per stored hash, tried per candidate.
_Check = Callable[[bytes], bool]

#: Longer than any hash these formats produce (passlib's largest salt, 1 KiB, is 1,366
#: characters): a longer string is refused before it is read.
_MAX_HASH_CHARS = 4096

# bcrypt reads 72 bytes at most.  The hashes passlib, pwdlib, Django and Flask-Security
# stored are of the first 72 bytes, the rest dropped silently (by the bcrypt release
# they ran on, or by themselves); recent bcrypt raises on longer input instead.
_BCRYPT_MAX_BYTES = 72
_BCRYPT = re.compile(r"\$2[aby]\$([0-9]{2})\$[./A-Za-z0-9]{53}")
_ITERATIONS = re.compile(r"[1-9][0-9]{0,9}")  # no sign, no leading zero, no spaces
_BASE64 = re.compile(r"[+/A-Za-z0-9]+={0,2}")
_ADAPTED_BASE64 = re.compile(r"[./A-Za-z0-9]*")  # passlib's: "." for "+", no padding

_ARGON2 = argon2.PasswordHasher()  # verify() reads the parameters from the hash


@dataclass(frozen=True, slots=True)
class LegacyHashes:
    """Which password hashes made by other libraries `PasswordHasher.verify` accepts,
    and the most work a stored hash may ask for.

    ``enabled=False`` accepts authgate's own format only (argon2id).  The argon2 limits
    apply to every argon2 hash, argon2id included; `PasswordHasher` raises them to its
    own parameters, so the hashes it makes always verify.
    """

    enabled: bool = True
    #: Flask-Security's ``SECURITY_PASSWORD_SALT``.  Set, a bcrypt, argon2 or passlib
    #: PBKDF2 hash also matches the password's HMAC-SHA512 under it (Flask-Security's
    #: default unless ``SECURITY_PASSWORD_SINGLE_HASH``), as well as the password.  An
    #: argon2id hash with exactly the hasher's own parameters is taken as authgate's
    #: and checked against the password only, so a failed login stays one verification.
    flask_security_salt: str | None = field(default=None, repr=False)
    #: Also try the password in this Unicode normal form: Flask-Security >= 4
    #: normalizes to ``SECURITY_PASSWORD_NORMALIZE_FORM`` (default "NFKD") first.
    normalize: NormalForm | None = None
    #: bcrypt's cost is a power of two: 12 takes about 0.2 s, 16 about 3 s.
    max_bcrypt_cost: int = 16
    #: Django 5.2 uses 1,000,000 (about 0.2 s with SHA-256); passlib used 29,000.
    max_pbkdf2_iterations: int = 10_000_000
    #: time_cost x memory_cost in KiB: 2 GiB x 1 pass is RFC 9106's first
    #: recommendation (a few seconds); Django's default is 200 MiB x 2.
    max_argon2_cost: int = 2 * 1024 * 1024
    #: argon2 starts one thread per lane.
    max_argon2_parallelism: int = 64

    def __post_init__(self) -> None:
        if self.flask_security_salt == "":
            raise ConfigError(
                "flask_security_salt is empty: set it to your SECURITY_PASSWORD_SALT, or"
                " leave it None if Flask-Security ran with SECURITY_PASSWORD_SINGLE_HASH"
            )
        if self.normalize not in (None, "NFC", "NFD", "NFKC", "NFKD"):
            raise ConfigError(
                f"normalize={self.normalize!r}: use None, 'NFC', 'NFD', 'NFKC' or 'NFKD'"
            )
        for name in (
            "max_bcrypt_cost",
            "max_pbkdf2_iterations",
            "max_argon2_cost",
            "max_argon2_parallelism",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")


def verify(password_hash: str, password: str, formats: LegacyHashes) -> bool:
    """True when `password` matches `password_hash` in one of the formats `formats`
    accepts; False for a wrong password and for any hash not accepted, never an
    exception."""
    if len(password_hash) > _MAX_HASH_CHARS:
        return False
    try:
        found = _read(password_hash, formats)
        if found is None:
            return False
        check, flask_made = found
        return any(check(secret) for secret in _secrets(password, formats, flask_made))
    except (ValueError, TypeError, OverflowError, VerificationError, InvalidHashError):
        # Every failure a malformed hash or password can raise here: UnicodeError,
        # binascii.Error and argon2's InvalidHashError are ValueErrors.
        return False


def _secrets(password: str, formats: LegacyHashes, flask_made: bool) -> Iterator[bytes]:
    """What the stored hash may be the hash of, most likely first."""
    raw = password.encode("utf-8")
    yield raw
    if not flask_made or not formats.enabled:
        return
    forms = [raw]
    if formats.normalize is not None:
        normal = unicodedata.normalize(formats.normalize, password).encode("utf-8")
        if normal != raw:
            yield normal
            forms.append(normal)
    if formats.flask_security_salt is not None:
        key = formats.flask_security_salt.encode("utf-8")
        for form in forms:
            yield base64.b64encode(hmac.new(key, form, hashlib.sha512).digest())


def _read(stored: str, formats: LegacyHashes) -> tuple[_Check, bool] | None:
    """The check for `stored`, and whether Flask-Security can have made it; None when
    the format is not accepted, the string is malformed or its cost is over a limit."""
    if stored.startswith("$argon2id$"):
        return _nothing_or(_argon2(stored, formats), flask_made=True)
    if not formats.enabled:
        return None
    if stored.startswith(("$argon2i$", "$argon2d$")):
        return _nothing_or(_argon2(stored, formats), flask_made=True)
    if stored.startswith("$2"):
        return _nothing_or(_bcrypt(stored, formats), flask_made=True)
    if stored.startswith("$pbkdf2-sha256$"):
        return _nothing_or(_passlib_pbkdf2(stored, "sha256", 32, formats), flask_made=True)
    if stored.startswith("$pbkdf2-sha512$"):
        return _nothing_or(_passlib_pbkdf2(stored, "sha512", 64, formats), flask_made=True)
    return _nothing_or(_django(stored, formats), flask_made=False)


def _nothing_or(check: _Check | None, *, flask_made: bool) -> tuple[_Check, bool] | None:
    return None if check is None else (check, flask_made)


def _argon2(stored: str, formats: LegacyHashes) -> _Check | None:
    try:
        params = argon2.extract_parameters(stored)
    except (InvalidHashError, ValueError):
        return None
    if (
        params.time_cost * params.memory_cost > formats.max_argon2_cost
        or params.parallelism > formats.max_argon2_parallelism
    ):
        return None

    def check(secret: bytes) -> bool:
        try:
            return _ARGON2.verify(stored, secret)
        except VerificationError:  # a mismatch, or a hash libargon2 would not read
            return False

    return check


def _bcrypt(stored: str, formats: LegacyHashes) -> _Check | None:
    found = _BCRYPT.fullmatch(stored)
    if found is None or not 4 <= int(found[1]) <= formats.max_bcrypt_cost:
        return None
    expected = stored.encode("ascii")

    def check(secret: bytes) -> bool:
        computed = bcrypt.hashpw(secret[:_BCRYPT_MAX_BYTES], expected)
        return hmac.compare_digest(computed, expected)

    return check


def _iterations(text: str, formats: LegacyHashes) -> int | None:
    if not _ITERATIONS.fullmatch(text):
        return None
    count = int(text)
    return count if count <= formats.max_pbkdf2_iterations else None


def _passlib_pbkdf2(stored: str, digest: str, size: int, formats: LegacyHashes) -> _Check | None:
    """``$pbkdf2-<digest>$<rounds>$<salt>$<checksum>``, salt and checksum in passlib's
    adapted base64 (passlib.handlers.pbkdf2.Pbkdf2DigestHandler)."""
    parts = stored.split("$")
    if len(parts) != 5:
        return None
    rounds = _iterations(parts[2], formats)
    salt, expected = _adapted_base64(parts[3]), _adapted_base64(parts[4])
    if rounds is None or salt is None or expected is None or len(expected) != size:
        return None

    def check(secret: bytes) -> bool:
        computed = hashlib.pbkdf2_hmac(digest, secret, salt, rounds, size)
        return hmac.compare_digest(computed, expected)

    return check


def _adapted_base64(text: str) -> bytes | None:
    if not _ADAPTED_BASE64.fullmatch(text) or len(text) % 4 == 1:
        return None
    try:
        return base64.b64decode(text.replace(".", "+") + "=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        return None


def _django(stored: str, formats: LegacyHashes) -> _Check | None:
    """Django's ``<algorithm>$<rest>`` (django.contrib.auth.hashers)."""
    algorithm, _, rest = stored.partition("$")
    if algorithm in ("pbkdf2_sha256", "pbkdf2_sha1"):
        return _django_pbkdf2(rest, algorithm.removeprefix("pbkdf2_"), formats)
    if algorithm == "argon2" and rest.startswith("argon2"):
        return _argon2("$" + rest, formats)
    if algorithm == "bcrypt_sha256" and rest.startswith("$2"):
        inner = _bcrypt(rest, formats)
        if inner is None:
            return None
        return lambda secret: inner(hashlib.sha256(secret).hexdigest().encode("ascii"))
    if algorithm == "bcrypt" and rest.startswith("$2"):
        return _bcrypt(rest, formats)
    return None


def _django_pbkdf2(rest: str, digest: str, formats: LegacyHashes) -> _Check | None:
    """``<iterations>$<salt>$<base64 digest>``; the salt is text, used as UTF-8."""
    parts = rest.split("$")
    if len(parts) != 3:
        return None
    iterations = _iterations(parts[0], formats)
    salt, encoded = parts[1], parts[2]
    if (
        iterations is None
        or not salt
        or not _is_base64_of(encoded, hashlib.new(digest).digest_size)
    ):
        return None
    salt_bytes = salt.encode("utf-8")
    expected = encoded.encode("ascii")

    def check(secret: bytes) -> bool:
        computed = base64.b64encode(hashlib.pbkdf2_hmac(digest, secret, salt_bytes, iterations))
        return hmac.compare_digest(computed, expected)

    return check


def _is_base64_of(text: str, size: int) -> bool:
    """Whether `text` is the canonical padded base64 of `size` bytes."""
    if not _BASE64.fullmatch(text):
        return False
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error:
        return False
    return len(raw) == size and base64.b64encode(raw).decode("ascii") == text
