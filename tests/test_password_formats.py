"""Hashes other libraries stored: each verifies its own password and no other; every
other format, a malformed string or a hash asking too much work is a wrong password,
refused fast and without an exception."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import argon2
import bcrypt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from authgate import password_formats
from authgate.errors import ConfigError
from authgate.password_formats import LegacyHashes
from authgate.passwords import Argon2Params, PasswordHasher

PW = "correct horse 🐎 battery"
SALT = "fs-salt-🧂"  # the SECURITY_PASSWORD_SALT the Flask-Security hashes below used
FLASK = LegacyHashes(flask_security_salt=SALT)
DEFAULT = LegacyHashes()

# Made by the libraries themselves, not by authgate (Django 5.2.19, passlib 1.7.4,
# pwdlib 0.4.2, Flask-Security-Too 5.9.2 with libpass 1.9.4, on bcrypt 5.0 and
# argon2-cffi 25.1), each the hash of `PW` unless the row says otherwise.
MADE_ELSEWHERE = [
    pytest.param(
        "pbkdf2_sha256$1000000$vAfeqmj8S39qy4MXSsqsk3$BoRo1RL99QH8u4pXLx09TGQRQtPQxVw16cUwlXiY1e0=",
        PW,
        DEFAULT,
        id="django-pbkdf2_sha256-default",
    ),
    pytest.param(
        "pbkdf2_sha256$1000$NaClNaClNaCl$ldq3DwRDsVcXjCNmsyV3r9Yzapmx/9mG4sw4MOW/D+M=",
        PW,
        DEFAULT,
        id="django-pbkdf2_sha256-1000",
    ),
    pytest.param(
        "pbkdf2_sha1$1000000$kEM59igYqVPrLstwhlseiJ$9Do5g96UQbkbtGSxBa/vrEwvg04=",
        PW,
        DEFAULT,
        id="django-pbkdf2_sha1",
    ),
    pytest.param(
        "argon2$argon2id$v=19$m=102400,t=2,p=8$cThPYUZDdElUdXpBU1dKME9KZEV3eQ"
        "$DfGYQu3jQEwPVHE6qVWe2sZJHmAcqyDE3l0OGxLb6hI",
        PW,
        DEFAULT,
        id="django-argon2",
    ),
    pytest.param(
        "bcrypt_sha256$$2b$04$azQvkEp.64FRfu0bAYzsu.xR9r.XU.rYRLCowubGEs3kBf.dOPyMS",
        PW,
        DEFAULT,
        id="django-bcrypt_sha256",
    ),
    pytest.param(
        "bcrypt$$2b$04$GwDtRaUcn5OjibhPZq8IJec6DEDBOvemL9v1lQkISVjPzYiskAu52",
        PW,
        DEFAULT,
        id="django-bcrypt",
    ),
    pytest.param(
        "$pbkdf2-sha256$1000$PWfsnXPunRMiZAxBiNE6Jw$sAOD0vcXZ2OOuBnITc20zcNKSu.c2/ZxfQwOPCQyWj4",
        PW,
        DEFAULT,
        id="passlib-pbkdf2_sha256",
    ),
    pytest.param(
        "$pbkdf2-sha512$1000$bI3x3vt/D6HUuleqNeb8Xw$fvkFl88pDLWFo8ac36/S28TmyT39cJt5zm0BidGJv6I"
        "G0vskwPqoPDVitcMqNzK2/uFbm05Rr9h0YtdcrLlVsw",
        PW,
        DEFAULT,
        id="passlib-pbkdf2_sha512",
    ),
    pytest.param(
        "$2b$04$nYZBEIMlgu/uAVdYMGKhreCbQTwBlCvdNFTGTI8iMxq2E97sCiyIC",
        PW,
        DEFAULT,
        id="pwdlib-bcrypt",
    ),
    pytest.param(
        "$argon2id$v=19$m=1024,t=1,p=1$hVxs8Qj6ijqSlI/+ZeNoNw$6r3PKZWWL5TrszJzCxu8sdW9/BBwpQdhyfRHqiwBFDk",
        PW,
        DEFAULT,
        id="pwdlib-argon2id",
    ),
    pytest.param(
        "$2b$04$VZaFf3J1XBjlFALsWb9oPeLajve2WnAn.Y4tMkzZ7aOh1.kGFM9WW",
        PW,
        FLASK,
        id="flask-security-bcrypt-hmac",
    ),
    pytest.param(
        "$argon2id$v=19$m=1024,t=1,p=1$ubdW6h0DgJCyVkqJce49Bw$gAVO5w65W1FDTG0HvFauuLa4myarKAo/bC7ZkK/B58o",
        PW,
        FLASK,
        id="flask-security-argon2-hmac",
    ),
    pytest.param(
        "$pbkdf2-sha512$1000$hNA6R4jRGiMEgJBSipFybg$BmyZtMw4i3A4ILMM5kObU7gVhQOcbJt1ZizpX3U39FvVP"
        "ou5B1mdNkQk5IDpHk2KBO16LHvjqOxdIkYFvmacHg",
        PW,
        FLASK,
        id="flask-security-pbkdf2_sha512-hmac",
    ),
    pytest.param(  # SECURITY_PASSWORD_SINGLE_HASH: the password itself, no salt
        "$argon2id$v=19$m=1024,t=1,p=1$jPEeYwzBmPP+/5+TknKutQ$NYX0ENT2ZdjDGDA71Y9o37veBtkx+Yzfi4SB3gQIU60",
        PW,
        DEFAULT,
        id="flask-security-argon2-single-hash",
    ),
    pytest.param(  # the HMAC (88 bytes) truncated to 72 before bcrypt
        "$2b$04$cV3N1aaGeoWS38oyEVLSYuvcCSjFsTCWBkeNkAiewoZhoEnXcG7WW",
        "x" * 100,
        FLASK,
        id="flask-security-bcrypt-hmac-long-password",
    ),
]

# From those projects' own test suites.
PROJECT_VECTORS = [
    # django tests/auth_tests/test_hashers.py
    pytest.param(
        "pbkdf2_sha256$390000$seasalt$8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c=",
        "lètmein",
        id="django-test_pbkdf2",
    ),
    pytest.param(
        "pbkdf2_sha1$390000$seasalt2$aDapRanzW8aHTz97v2TcfHzWD+I=",
        "lètmein",
        id="django-test_low_level_pbkdf2_sha1",
    ),
    pytest.param(
        "argon2$argon2i$m=8,t=1,p=1$c29tZXNhbHQ$gwQOXSNhxiOxPOA0+PY10P9QFO4NAYysnqRt1GSQLE55m+2G"
        "YDt9FEjPMHhP2Cuf0nOEXXMocVrsJAtNSsKyfg",
        "secret",
        id="django-test_argon2-no-version",
    ),
    pytest.param(
        "argon2$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$YC9+jJCrQhs5R6db7LlN8Q",
        "secret",
        id="django-test_argon2-v19",
    ),
    # passlib tests/test_handlers_pbkdf2.py, test_handlers_bcrypt.py, test_handlers_argon2.py
    pytest.param(
        "$pbkdf2-sha256$1212$4vjV83LKPjQzk31VI4E0Vw$hsYF68OiOUPdDZ1Fg.fJPeq1h/gXXY7acBp9/6c.tmQ",
        "password",
        id="passlib-pbkdf2_sha256",
    ),
    pytest.param(
        "$pbkdf2-sha256$1212$3SABFJGDtyhrQMVt1uABPw$WyaUoqCLgvz97s523nF4iuOqZNbp5Nt8do/cuaa7AiI",
        "\u0399\u03c9\u03b1\u03bd\u03bd\u03b7\u03c2",
        id="passlib-pbkdf2_sha256-unicode",
    ),
    pytest.param(
        "$pbkdf2-sha512$1212$RHY0Fr3IDMSVO/RSZyb5ow$eNLfBK.eVozomMr.1gYa17k9B7KIK25NOEshvhrSX.esq"
        "Y3s.FvWZViXz4KoLlQI.BzY/YTNJOiKc5gBYFYGww",
        "password",
        id="passlib-pbkdf2_sha512",
    ),
    pytest.param(
        "$2a$05$c92SVSfjeiCD6F2nAD6y0uBpJDjdRkt0EgeC4/31Rf2LUZbDRDE.O",
        "U*U*U*U*",
        id="passlib-bcrypt-2a-jtr",
    ),
    pytest.param(
        "$2b$05$Z17AXnnlpzddNUvnC6cZNOSwMA/8oNiKnHTHTwLlBijfucQQlHjaG",
        "t\u00e1\u0411\u2113\u0259",
        id="passlib-bcrypt-2b-utf8",
    ),
    pytest.param(
        "$argon2i$v=19$m=256,t=1,p=1$c29tZXNhbHQ$AJFIsNZTMKTAewB4+ETN1A",
        "password",
        id="passlib-argon2i",
    ),
    pytest.param(
        "$argon2d$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$cZn5d+rFh+ZfuRhm2iGUGgcrW5YLeM6q7L3vBsdmFA0",
        "password",
        id="argon2-cffi-argon2d",
    ),
]

# Correct for their password, and still refused: formats authgate does not read.
OTHER_FORMATS = [
    pytest.param(
        "sha1$seasalt$cff36ea83f5706ce9aa7454e63e431fc726b2dc8", "lètmein", id="django-sha1"
    ),
    pytest.param("md5$seasalt$3f86d0d3d465b7b458c231bf3555c0e3", "lètmein", id="django-md5"),
    pytest.param(
        "md5$UhuObldjv54sKmJdheXkeO$720ebcb7fadbd7679ff08fe1f765bee5", PW, id="django-md5-2"
    ),
    pytest.param("88a434c88cca4e900f7874cd98123f43", "lètmein", id="django-unsalted-md5"),
    pytest.param("md5$$88a434c88cca4e900f7874cd98123f43", "lètmein", id="django-md5-empty-salt"),
    pytest.param(
        "sha1$$6d138ca3ae545631b3abd71a4f076ce759c5700b", "lètmein", id="django-unsalted-sha1"
    ),
    pytest.param("crypt$$ab1Hv2Lg7ltQo", "lètmei", id="django-crypt"),
    pytest.param(
        "scrypt$1024$ifShu2afyBgc2jwFS5bXPH$8$5$uQTkwOMQDDOL4Rh1CS2YnltslPFMP8oJCkJCdSLgK2I/Nsnv/7AW"
        "Xv9LWteLIkwiJQ6UMOD4oZa+FVbziUR20Q==",
        PW,
        id="django-scrypt",
    ),
    pytest.param("41399022606415d0480276aee0e4cf74", PW, id="hex-md5"),
    pytest.param("c20ac3ae6c431242e08587adaec8c43acad4f4ec", PW, id="hex-sha1"),
    pytest.param(PW, PW, id="plaintext"),
    pytest.param("$1$EqtLDgGV$R.pMsKCcvOpeXy7Nde.rq1", PW, id="md5-crypt"),
    pytest.param(
        "$5$rounds=1000$XB8Cbx5spAJY6/zz$KVzf22rd.aC2uitVdrf8Ozz2DO8kzXI0ayLEDEJ7t/D",
        PW,
        id="sha256-crypt",
    ),
    pytest.param(
        "$6$rounds=1000$ZvxCxKi0lN2zyuH9$yU85nvOPWOOLRXMGsb6pCmMm2NScu1afVkAgvd95sw2/jScpXdMAGWD8Pc6"
        "q.I4yH5nigILT9YwzKuZvCb1lI.",
        PW,
        id="sha512-crypt",
    ),
    pytest.param(
        "$pbkdf2$1000$0ZpTyhmDUCol5HyP0dq7Fw$hWaRB5fS5TmzRI233ItzZgraLE8",
        PW,
        id="passlib-pbkdf2_sha1",
    ),
    pytest.param(
        "{PBKDF2-SHA256}1212$4vjV83LKPjQzk31VI4E0Vw$hsYF68OiOUPdDZ1Fg.fJPeq1h/gXXY7acBp9/6c.tmQ",
        "password",
        id="passlib-ldap_pbkdf2_sha256",
    ),
    pytest.param(
        "pbkdf2:sha256:1000$uCVggSDkEOs778Yl$1b3ef84b75c54424f36adc0822768c1ac9586461055a8eaacb5a9aa3"
        "fe171349",
        PW,
        id="werkzeug-pbkdf2",
    ),
]


def _b64hmac(password: str, salt: str = SALT) -> bytes:
    """Flask-Security's get_hmac, written out independently of authgate."""
    return base64.b64encode(hmac.new(salt.encode(), password.encode(), hashlib.sha512).digest())


def _wrong_versions(password: str) -> list[str]:
    wrong = [password + "x", password[:-1], password.swapcase(), "", " " + password]
    return [w for w in wrong if w != password]


@pytest.mark.parametrize(("stored", "password", "formats"), MADE_ELSEWHERE)
def test_a_hash_another_library_made_verifies_its_password_only(
    stored: str, password: str, formats: LegacyHashes
) -> None:
    assert password_formats.verify(stored, password, formats) is True
    for wrong in _wrong_versions(password):
        assert password_formats.verify(stored, wrong, formats) is False, wrong


@pytest.mark.parametrize(("stored", "password"), PROJECT_VECTORS)
def test_the_projects_own_test_vectors_verify(stored: str, password: str) -> None:
    assert password_formats.verify(stored, password, DEFAULT) is True
    for wrong in _wrong_versions(password):
        assert password_formats.verify(stored, wrong, DEFAULT) is False, wrong


@pytest.mark.parametrize(("stored", "password"), OTHER_FORMATS)
def test_other_formats_are_wrong_passwords_even_with_the_right_password(
    stored: str, password: str
) -> None:
    assert password_formats.verify(stored, password, FLASK) is False
    assert PasswordHasher(Argon2Params.cheap(), legacy=FLASK).verify(stored, password) is False


# -- made here, by the real bcrypt and argon2-cffi -------------------------------------


def _bcrypt(secret: bytes, prefix: bytes = b"2b", cost: int = 4) -> str:
    return bcrypt.hashpw(secret, bcrypt.gensalt(cost, prefix)).decode()


@pytest.mark.parametrize("variant", ["2a", "2b", "2y"])
def test_bcrypt_of_every_variant_verifies(variant: str) -> None:
    made = _bcrypt(PW.encode(), b"2b" if variant == "2y" else variant.encode())
    stored = f"${variant}${made[4:]}"  # $2y$ is PHP's name for $2b$
    assert password_formats.verify(stored, PW, DEFAULT) is True
    assert password_formats.verify(stored, PW + "!", DEFAULT) is False


@pytest.mark.parametrize("variant", [b"2x", b"2", b"2c", b"2B"])
def test_other_bcrypt_variants_are_refused(variant: bytes) -> None:
    made = _bcrypt(PW.encode())
    # $2x$ is crypt_blowfish's buggy variant: bcrypt 5 still computes it, passlib refused it
    stored = "$" + variant.decode() + made[3:]
    assert password_formats.verify(stored, PW, DEFAULT) is False


@pytest.mark.parametrize("kind", [argon2.Type.ID, argon2.Type.I, argon2.Type.D])
def test_argon2_of_every_variant_and_parameters_verifies(kind: argon2.Type) -> None:
    other = argon2.PasswordHasher(time_cost=2, memory_cost=64, parallelism=2, type=kind)
    stored = other.hash(PW)
    hasher = PasswordHasher(Argon2Params.cheap())
    assert hasher.verify(stored, PW) is True
    assert hasher.verify(stored, PW + "!") is False
    assert hasher.verify("argon2" + stored, PW) is True  # Django's prefix
    assert hasher.verify("argon2" + stored, PW + "!") is False
    assert hasher.needs_rehash(stored)


def test_django_bcrypt_formats_made_with_bcrypt() -> None:
    sha256 = _bcrypt(hashlib.sha256(PW.encode()).hexdigest().encode())
    plain = _bcrypt(PW.encode())
    for stored in (f"bcrypt_sha256${sha256}", f"bcrypt${plain}"):
        assert password_formats.verify(stored, PW, DEFAULT) is True
        assert password_formats.verify(stored, PW + "!", DEFAULT) is False
    # each prefix means its own pre-hash: swapped, nothing matches
    assert password_formats.verify(f"bcrypt${sha256}", PW, DEFAULT) is False
    assert password_formats.verify(f"bcrypt_sha256${plain}", PW, DEFAULT) is False


def test_bcrypt_reads_72_bytes_as_the_libraries_that_stored_the_hash_did() -> None:
    # passlib's test vector: "chars after 72 are ignored"
    stored = "$2a$05$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui"
    long = (
        "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
        "0123456789chars after 72 are ignored"
    )
    assert len(long.encode()) > 72  # bcrypt 5 raises ValueError on this; verify must not
    assert password_formats.verify(stored, long, DEFAULT) is True
    assert password_formats.verify(stored, long[:72], DEFAULT) is True
    assert password_formats.verify(stored, "X" + long[1:], DEFAULT) is False
    assert password_formats.verify(stored, long[:71], DEFAULT) is False
    # 72 bytes of a multi-byte password: cut inside a character, as bcrypt did
    emoji = "🐎" * 30
    made = _bcrypt(emoji.encode()[:72])
    assert password_formats.verify(made, emoji, DEFAULT) is True
    assert password_formats.verify(made, "🐎" * 17, DEFAULT) is False


# -- Flask-Security's HMAC pre-hash ----------------------------------------------------


def test_flask_security_hashes_need_its_salt() -> None:
    stored = "$2b$04$VZaFf3J1XBjlFALsWb9oPeLajve2WnAn.Y4tMkzZ7aOh1.kGFM9WW"  # Flask-Security's
    assert password_formats.verify(stored, PW, FLASK) is True
    assert password_formats.verify(stored, PW, DEFAULT) is False
    assert password_formats.verify(stored, PW, LegacyHashes(flask_security_salt="other")) is False


def test_with_a_salt_either_the_password_or_its_hmac_matches() -> None:
    plain = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PW)
    salted = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(_b64hmac(PW))
    pbkdf2 = _passlib_pbkdf2("sha512", _b64hmac(PW), b"0123456789abcdef", 1000)
    for stored in (plain, salted, pbkdf2, _bcrypt(_b64hmac(PW)[:72])):
        assert password_formats.verify(stored, PW, FLASK) is True, stored
        assert password_formats.verify(stored, PW + "!", FLASK) is False, stored
    assert password_formats.verify(salted, PW, DEFAULT) is False
    assert password_formats.verify(pbkdf2, PW, DEFAULT) is False


def test_djangos_formats_never_take_the_flask_security_hmac() -> None:
    # Flask-Security single-hashes the django_* schemes (SECURITY_PASSWORD_SINGLE_HASH)
    stored = "bcrypt$" + _bcrypt(_b64hmac(PW)[:72])
    assert password_formats.verify(stored, PW, FLASK) is False


def test_flask_security_normalizes_before_it_hashes() -> None:
    typed = "Ⅻ ﬁne password"  # NFKD: "XII fine password"
    # Flask-Security 5.9 with its default SECURITY_PASSWORD_NORMALIZE_FORM, NFKD
    salted = "$2b$04$EYUpJVjK3BUx4g0/yrx60OxmGzKgs/GxAKF69Bc.hmIbq9JzJiIuq"
    single = (
        "$argon2id$v=19$m=1024,t=1,p=1$l1JqLaV0bu0951xr7T2n1A$E/N9ixgi0rsxV3kVqsszTfPs1HJPGqBzFJJXs"
        "37bD8o"
    )
    nfkd = LegacyHashes(flask_security_salt=SALT, normalize="NFKD")
    assert password_formats.verify(salted, typed, nfkd) is True
    assert password_formats.verify(salted, typed, FLASK) is False
    assert password_formats.verify(salted, "XII fine password", FLASK) is True
    assert password_formats.verify(single, typed, LegacyHashes(normalize="NFKD")) is True
    assert password_formats.verify(single, typed, DEFAULT) is False
    assert (
        password_formats.verify(single, "XII fine passwort", LegacyHashes(normalize="NFKD"))
        is False
    )


def _passlib_pbkdf2(digest: str, secret: bytes, salt: bytes, rounds: int) -> str:
    size = hashlib.new(digest).digest_size

    def ab64(raw: bytes) -> str:
        return base64.b64encode(raw).decode().rstrip("=").replace("+", ".")

    derived = hashlib.pbkdf2_hmac(digest, secret, salt, rounds, size)
    return f"${'pbkdf2-' + digest}${rounds}${ab64(salt)}${ab64(derived)}"


# -- turned off ------------------------------------------------------------------------


def test_legacy_off_accepts_argon2id_only() -> None:
    off = LegacyHashes(enabled=False, flask_security_salt=SALT)
    for param in [*MADE_ELSEWHERE, *PROJECT_VECTORS]:
        stored, password = param.values[0], param.values[1]
        assert isinstance(stored, str)
        assert isinstance(password, str)
        expected = stored.startswith("$argon2id$") and "flask-security-argon2-hmac" not in str(
            param.id
        )
        assert password_formats.verify(stored, password, off) is expected, param.id
    hasher = PasswordHasher(Argon2Params.cheap(), legacy=off)
    older = PasswordHasher(Argon2Params(time_cost=2, memory_cost=16, parallelism=1))
    assert hasher.verify(older.hash("old params 1"), "old params 1") is True
    assert hasher.verify(hasher.hash("own params 1"), "own params 1") is True
    assert hasher.verify(_bcrypt(b"bcrypt pass"), "bcrypt pass") is False


# -- the limits --------------------------------------------------------------------------

_CHARS53 = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ."
_SALT22 = "c29tZXNhbHQ"
ABSURD = [
    pytest.param("$2b$31$" + _CHARS53, id="bcrypt-31"),
    pytest.param("$2b$17$" + _CHARS53, id="bcrypt-17"),
    pytest.param("bcrypt$$2b$20$" + _CHARS53, id="django-bcrypt-20"),
    pytest.param("bcrypt_sha256$$2a$25$" + _CHARS53, id="django-bcrypt_sha256-25"),
    pytest.param(
        f"pbkdf2_sha256${10**9}$salt$ldq3DwRDsVcXjCNmsyV3r9Yzapmx/9mG4sw4MOW/D+M=", id="pbkdf2-1e9"
    ),
    pytest.param(
        f"pbkdf2_sha1${10_000_001}$salt$aDapRanzW8aHTz97v2TcfHzWD+I=", id="pbkdf2_sha1-1e7+1"
    ),
    pytest.param(
        f"$pbkdf2-sha512${2**32 - 1}$RHY0Fr3IDMSVO/RSZyb5ow$" + "A" * 86, id="passlib-pbkdf2-2^32"
    ),
    pytest.param(f"$argon2id$v=19$m={2**22},t=1,p=1${_SALT22}$" + "A" * 43, id="argon2-4GiB"),
    pytest.param(f"$argon2i$v=19$m=65536,t={10**5},p=1${_SALT22}$" + "A" * 43, id="argon2-t1e5"),
    pytest.param(f"$argon2d$v=19$m=65536,t=1,p=1000${_SALT22}$" + "A" * 43, id="argon2-p1000"),
    pytest.param(
        f"argon2$argon2id$v=19$m={2**21},t=2,p=8${_SALT22}$" + "A" * 43,
        id="django-argon2-4GiB-pass",
    ),
]


UNLIMITED = LegacyHashes(
    max_bcrypt_cost=31,
    max_pbkdf2_iterations=2**32,
    max_argon2_cost=2**40,
    max_argon2_parallelism=2**24,
)


class WorkSpy:
    """Records every call into the three libraries that do the expensive work, without
    doing it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []

        def record(name: str, result: Any) -> Callable[..., Any]:
            def spy(*args: Any, **kwargs: Any) -> Any:
                self.calls.append(name)
                return result

            return spy

        monkeypatch.setattr(bcrypt, "hashpw", record("bcrypt", b"$2b$"))
        monkeypatch.setattr(hashlib, "pbkdf2_hmac", record("pbkdf2", b""))
        monkeypatch.setattr(argon2.PasswordHasher, "verify", record("argon2", False))


@pytest.mark.parametrize("stored", ABSURD)
def test_a_hash_asking_absurd_work_is_refused_before_any_work(
    stored: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = WorkSpy(monkeypatch)
    started = time.perf_counter()
    assert PasswordHasher(Argon2Params.cheap(), legacy=FLASK).verify(stored, PW) is False
    assert time.perf_counter() - started < 0.5
    assert spy.calls == []
    # well-formed: with the limits out of the way, the same string reaches the library
    assert password_formats.verify(stored, PW, UNLIMITED) is False
    assert spy.calls != []


def test_the_limits_are_inclusive_and_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    bcrypt5, bcrypt6 = _bcrypt(b"limits", cost=5), _bcrypt(b"limits", cost=6)
    pbkdf2_1000 = _passlib_pbkdf2("sha256", b"limits", b"salt", 1000)
    pbkdf2_1001 = _passlib_pbkdf2("sha256", b"limits", b"salt", 1001)
    django_1000 = "pbkdf2_sha256$1000$NaClNaClNaCl$ldq3DwRDsVcXjCNmsyV3r9Yzapmx/9mG4sw4MOW/D+M="
    django_1001 = "pbkdf2_sha256$1001$NaClNaClNaCl$ldq3DwRDsVcXjCNmsyV3r9Yzapmx/9mG4sw4MOW/D+M="
    argon_1024 = argon2.PasswordHasher(time_cost=2, memory_cost=512, parallelism=2).hash("limits")
    tight = LegacyHashes(
        max_bcrypt_cost=5,
        max_pbkdf2_iterations=1000,
        max_argon2_cost=1024,
        max_argon2_parallelism=2,
    )
    tighter = LegacyHashes(max_argon2_cost=1023)
    fewer_lanes = LegacyHashes(max_argon2_parallelism=1)
    assert password_formats.verify(bcrypt5, "limits", tight) is True
    assert password_formats.verify(pbkdf2_1000, "limits", tight) is True
    assert password_formats.verify(django_1000, PW, tight) is True
    assert password_formats.verify(argon_1024, "limits", tight) is True
    spy = WorkSpy(monkeypatch)
    assert password_formats.verify(bcrypt6, "limits", tight) is False
    assert password_formats.verify(pbkdf2_1001, "limits", tight) is False
    assert password_formats.verify(django_1001, PW, tight) is False
    assert password_formats.verify(argon_1024, "limits", tighter) is False
    assert password_formats.verify(argon_1024, "limits", fewer_lanes) is False
    assert spy.calls == []


def test_the_argon2_limits_never_refuse_the_hashers_own_cost() -> None:
    before = PasswordHasher(Argon2Params(time_cost=1, memory_cost=64, parallelism=2))
    now = PasswordHasher(
        Argon2Params(time_cost=2, memory_cost=64, parallelism=2),
        legacy=LegacyHashes(max_argon2_cost=8, max_argon2_parallelism=1),
    )
    assert now.verify(before.hash("older hash 1"), "older hash 1") is True  # 64 <= 128
    too_costly = argon2.PasswordHasher(time_cost=3, memory_cost=64, parallelism=2).hash("x")
    assert now.verify(too_costly, "x") is False  # 192 > max(8, 128)


def test_comparisons_are_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    for stored, password in [
        ("$2b$04$nYZBEIMlgu/uAVdYMGKhreCbQTwBlCvdNFTGTI8iMxq2E97sCiyIC", PW),
        ("bcrypt_sha256$$2b$04$azQvkEp.64FRfu0bAYzsu.xR9r.XU.rYRLCowubGEs3kBf.dOPyMS", PW),
        ("pbkdf2_sha256$1000$NaClNaClNaCl$ldq3DwRDsVcXjCNmsyV3r9Yzapmx/9mG4sw4MOW/D+M=", PW),
        (
            "$pbkdf2-sha256$1212$4vjV83LKPjQzk31VI4E0Vw$hsYF68OiOUPdDZ1Fg.fJPeq1h/gXXY7acBp9/6c.tmQ",
            "password",
        ),
    ]:
        compared.clear()
        assert password_formats.verify(stored, password, DEFAULT) is True
        assert len(compared) == 1 and compared[0][0] == compared[0][1], stored
        compared.clear()
        assert password_formats.verify(stored, password + "!", DEFAULT) is False
        assert len(compared) == 1 and compared[0][0] != compared[0][1], stored


def test_a_failed_check_costs_one_verification_per_candidate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stored = _bcrypt(b"cost of a failure")
    calls: list[bytes] = []
    real = bcrypt.hashpw

    def spy(secret: bytes, salt: bytes) -> bytes:
        calls.append(secret)
        return real(secret, salt)

    monkeypatch.setattr(bcrypt, "hashpw", spy)
    assert password_formats.verify(stored, "wrong", DEFAULT) is False
    assert calls == [b"wrong"]
    calls.clear()
    assert password_formats.verify(stored, "wrong", FLASK) is False
    assert calls == [b"wrong", _b64hmac("wrong")[:72]]
    calls.clear()
    # normalizing changes nothing here: no third check
    assert password_formats.verify(stored, "wrong", LegacyHashes(normalize="NFKD")) is False
    assert calls == [b"wrong"]


# -- malformed input -----------------------------------------------------------------------

_VALID_DJANGO = "pbkdf2_sha256$1000$NaClNaClNaCl$ldq3DwRDsVcXjCNmsyV3r9Yzapmx/9mG4sw4MOW/D+M="
_VALID_PASSLIB = (
    "$pbkdf2-sha256$1212$4vjV83LKPjQzk31VI4E0Vw$hsYF68OiOUPdDZ1Fg.fJPeq1h/gXXY7acBp9/6c.tmQ"
)
_VALID_BCRYPT = "$2b$04$nYZBEIMlgu/uAVdYMGKhreCbQTwBlCvdNFTGTI8iMxq2E97sCiyIC"


@pytest.mark.parametrize(
    "stored",
    [
        _VALID_DJANGO.replace("$1000$", "$01000$"),
        _VALID_DJANGO.replace("$1000$", "$+1000$"),
        _VALID_DJANGO.replace("$1000$", "$ 1000$"),
        _VALID_DJANGO.replace("$1000$", "$1_000$"),
        _VALID_DJANGO.replace("$1000$", "$\u0661\u0660\u0660\u0660$"),  # Arabic-Indic 1000
        _VALID_DJANGO.replace("$1000$", "$0$"),
        _VALID_DJANGO.replace("$NaClNaClNaCl$", "$$"),
        _VALID_DJANGO + "$",
        _VALID_DJANGO[:-1],
        _VALID_DJANGO.replace("=", "=="),
        _VALID_DJANGO.replace("ldq3", "ld!3"),
        _VALID_PASSLIB.replace("$1212$", "$01212$"),
        _VALID_PASSLIB + "$",
        _VALID_PASSLIB + "A",  # a checksum one byte too long
        _VALID_PASSLIB[:-2],
        _VALID_PASSLIB.replace("4vjV", "4v=V"),
        _VALID_PASSLIB.replace("$4vjV83LKPjQzk31VI4E0Vw$", "$4vjV83LKPjQzk31VI4E0V$"),  # 4n+1
        _VALID_BCRYPT[:-1],
        _VALID_BCRYPT + "A",
        _VALID_BCRYPT.replace("$04$", "$4$"),
        _VALID_BCRYPT.replace("$04$", "$03$"),
        _VALID_BCRYPT.replace("nYZB", "nYZ!"),
        _VALID_BCRYPT.replace("$04$", "$٠٤$"),
        "bcrypt_sha256$" + _VALID_BCRYPT[1:],  # Django's format has "$$" there
        "bcrypt$" + _VALID_BCRYPT[1:],
        "argon2$" + "$argon2id$v=19$m=1024,t=1,p=1$hVxs8Qj6ijqSlI/+ZeNoNw$6r3PKZWWL5TrszJzCxu8sdW9",
        "$argon2id$v=19$m=1024,t=1,p=1$hVxs8Qj6ijqSlI/+ZeNoNw$6r3PKZWWL5TrszJzCx==",
        "$argon2id$v=19$m=1024,t=1,p=1$$",
        "$argon2id$v=19$m=-1,t=1,p=1$hVxs8Qj6ijqSlI/+ZeNoNw$6r3PKZWWL5TrszJzCxu8sdW9/BBwpQdhyfRHqiwBFDk",
        "$argon2id$v=19$m=1024,t=0,p=1$hVxs8Qj6ijqSlI/+ZeNoNw$6r3PKZWWL5TrszJzCxu8sdW9/BBwpQdhyfRHqiwBFDk",
        "$argon2id$v=19$m=1024,t=1,p=1,keyid=AB$hVxs8Qj6ijqSlI/+ZeNoNw$6r3PKZWWL5TrszJzCxu8sdW9",
        "$argon2id$",
        "$2b$",
        "$pbkdf2-sha512$",
        "pbkdf2_sha256$",
        "argon2$",
        "bcrypt$",
        "$",
        "$$$$",
        "\x00",
        "pbkdf2_sha256$1000$sa\ud800lt$ldq3DwRDsVcXjCNmsyV3r9Yzapmx/9mG4sw4MOW/D+M=",
        "$2b$04$" + "é" * 53,
        "x" * 100_000,
    ],
)
def test_a_malformed_hash_is_a_wrong_password(stored: str, monkeypatch: pytest.MonkeyPatch) -> None:
    hasher = PasswordHasher(Argon2Params.cheap(), legacy=FLASK)
    assert hasher.verify(stored, PW) is False
    assert hasher.verify(stored, "password") is False
    if "argon2" not in stored:  # argon2-cffi reads its own format; the others are read here
        spy = WorkSpy(monkeypatch)
        assert password_formats.verify(stored, PW, UNLIMITED) is False
        assert spy.calls == [], "a malformed hash was computed before being refused"


def test_a_password_that_cannot_be_encoded_is_a_wrong_password() -> None:
    for stored in (_VALID_DJANGO, _VALID_PASSLIB, _VALID_BCRYPT):
        assert password_formats.verify(stored, "lone \ud800 surrogate", FLASK) is False


PREFIXES = [
    "$2a$",
    "$2b$",
    "$2y$",
    "$2b$04$",
    "$argon2id$",
    "$argon2i$",
    "$argon2d$",
    "$argon2id$v=19$m=8,t=1,p=1$",
    "$pbkdf2-sha256$",
    "$pbkdf2-sha512$",
    "$pbkdf2-sha256$10$",
    "pbkdf2_sha256$",
    "pbkdf2_sha1$",
    "pbkdf2_sha256$10$",
    "argon2$",
    "argon2$argon2id$",
    "bcrypt$",
    "bcrypt$$2b$",
    "bcrypt_sha256$",
    "bcrypt_sha256$$2b$04$",
    "",
]
# Small enough that even a well-formed string hypothesis stumbles on costs nothing.
SMALL = LegacyHashes(
    flask_security_salt=SALT,
    normalize="NFKD",
    max_bcrypt_cost=4,
    max_pbkdf2_iterations=100,
    max_argon2_cost=64,
    max_argon2_parallelism=2,
)


@settings(max_examples=600, deadline=None)
@given(
    prefix=st.sampled_from(PREFIXES),
    rest=st.one_of(
        st.text(max_size=120),
        st.text(alphabet="$=,.+/0123456789abcdefvmtpAZ", max_size=120),
    ),
    password=st.text(max_size=40),
)
def test_any_string_after_a_known_prefix_is_refused_without_an_exception(
    prefix: str, rest: str, password: str
) -> None:
    started = time.perf_counter()
    assert password_formats.verify(prefix + rest, password, SMALL) is False
    assert time.perf_counter() - started < 0.5


# -- configuration ---------------------------------------------------------------------------


def test_configuration_mistakes_are_said_at_once() -> None:
    with pytest.raises(ConfigError, match="SECURITY_PASSWORD_SALT"):
        LegacyHashes(flask_security_salt="")
    with pytest.raises(ConfigError, match="NFKD"):
        LegacyHashes(normalize="nfkd")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_bcrypt_cost"):
        LegacyHashes(max_bcrypt_cost=0)


def test_the_salt_is_never_shown() -> None:
    legacy = LegacyHashes(flask_security_salt=SALT)
    assert SALT not in repr(legacy)
    assert SALT not in repr(PasswordHasher(legacy=legacy))
    assert "LegacyHashes(" in repr(PasswordHasher(legacy=legacy))


def test_the_passwords_pages_examples_run() -> None:
    page = (Path(__file__).resolve().parent.parent / "docs" / "passwords.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, re.S)
    assert len(blocks) == 3
    for block in blocks:
        exec(compile(block, "docs/passwords.md", "exec"), {})  # noqa: S102 - our own docs
