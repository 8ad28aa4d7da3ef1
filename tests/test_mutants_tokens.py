"""Tokens: the boundaries and refusals the other token tests leave open, found by mutation
testing (docs/mutation.md): exact expiry instants, leeway on every time claim, claim
types, key ids (RFC 7638 thumbprints), the JWKS entries, and failing closed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import string
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from authgate import tokens
from authgate.errors import (
    ConfigError,
    ExpiredToken,
    InvalidTokenClaims,
    MalformedToken,
    TokenNotYetValid,
    UnknownKey,
)
from authgate.tokens import MAX_TOKEN_LENGTH, Key, KeyRing, TokenVerifier

SECRET = "mutants-secret-key-that-is-long-enough-0123456789"
NOW = 1_700_000_000
# RFC 7638 section 3.1: an RSA public key and its JWK thumbprint.
RFC7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B"
    "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_F"
    "DW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4"
    "vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
)
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


RANDOM_32 = "Xq3v9LkT0pWz7Rb2NcYe5HgUa8JmDs4F"


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verifier(leeway: float = 0) -> TokenVerifier:
    return TokenVerifier(
        KeyRing([Key.hmac(SECRET)]), issuer="authgate", audience="authgate", leeway=leeway
    )


def token(v: TokenVerifier, ttl: int = 300, now: float = NOW, **claims: Any) -> str:
    return v.issue({"sub": "alice", "sid": "s1", "ver": 1, **claims}, ttl, now=now)


def forge(header: dict[str, Any], payload: dict[str, Any]) -> str:
    """Sign a token by hand with the verifier's secret, whatever its header says."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def payload(**over: Any) -> dict[str, Any]:
    base = {
        "iss": "authgate",
        "aud": "authgate",
        "sub": "alice",
        "sid": "s1",
        "jti": "j1",
        "ver": 1,
        "iat": NOW,
        "exp": NOW + 300,
    }
    return {**base, **over}


def pem(public_key: Any) -> bytes:
    raw: bytes = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return raw


def private_bytes(private_key: Any, encoding: Any = serialization.Encoding.PEM) -> bytes:
    raw: bytes = private_key.private_bytes(
        encoding, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return raw


def thumbprint(members: dict[str, str]) -> str:
    """RFC 7638: SHA-256 of the required members, sorted, without whitespace."""
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":"))
    return b64(hashlib.sha256(canonical.encode()).digest())


# -- time claims ------------------------------------------------------------------------


def test_a_token_expires_at_its_exp_instant_not_a_second_later() -> None:
    v = verifier()
    t = token(v)
    assert v.verify(t, now=NOW + 299.5)["sub"] == "alice"
    with pytest.raises(ExpiredToken):
        verifier().verify(t, now=NOW + 300)


def test_a_token_is_valid_from_its_nbf_instant_on() -> None:
    t = token(verifier(), nbf=NOW + 10)
    assert verifier().verify(t, now=NOW + 10)["sub"] == "alice"
    with pytest.raises(TokenNotYetValid):
        verifier().verify(t, now=NOW + 9)


def test_leeway_admits_an_nbf_that_little_ahead_and_no_more() -> None:
    t = token(verifier(), nbf=NOW + 20)
    assert verifier(leeway=30).verify(t, now=NOW)["sub"] == "alice"
    with pytest.raises(TokenNotYetValid):
        verifier(leeway=10).verify(t, now=NOW)


def test_a_token_issued_this_very_second_verifies() -> None:
    v = verifier()
    assert v.verify(token(v), now=NOW)["sub"] == "alice"


def test_leeway_admits_an_iat_that_little_ahead_and_no_more() -> None:
    t = token(verifier(), now=NOW + 20)
    assert verifier(leeway=30).verify(t, now=NOW)["sub"] == "alice"
    with pytest.raises(TokenNotYetValid):
        verifier(leeway=10).verify(t, now=NOW)


# -- claim types ------------------------------------------------------------------------


@pytest.mark.parametrize("nbf", ["soon", True, None, [NOW]])
def test_an_nbf_that_is_not_a_number_is_refused(nbf: Any) -> None:
    with pytest.raises(InvalidTokenClaims):
        verifier().verify(token(verifier(), nbf=nbf), now=NOW)


@pytest.mark.parametrize(
    "claims", [{"sub": 42}, {"sub": ["alice"]}, {"sid": ""}, {"jti": ""}, {"jti": 7}]
)
def test_sub_jti_and_sid_must_be_non_empty_strings(claims: dict[str, Any]) -> None:
    with pytest.raises(InvalidTokenClaims):
        verifier().verify(token(verifier(), **claims), now=NOW)


@pytest.mark.parametrize(
    "claims",
    [
        {"roles": "admin"},
        {"groups": "admins"},
        {"groups": [1]},
        {"perms": "users:write"},
        {"perms": [None]},
    ],
)
def test_roles_groups_and_perms_must_be_lists_of_strings(claims: dict[str, Any]) -> None:
    with pytest.raises(InvalidTokenClaims):
        verifier().verify(token(verifier(), **claims), now=NOW)


# -- the header -------------------------------------------------------------------------


@pytest.mark.parametrize("kid", [["hs-x"], {"kid": "hs-x"}, 7])
def test_a_kid_that_is_not_a_string_names_no_key(kid: Any) -> None:
    bad = forge({"alg": "HS256", "typ": "at+jwt", "kid": kid}, payload())
    with pytest.raises(UnknownKey):
        verifier().verify(bad, now=NOW)


def _exactly(length: int) -> str:
    """A valid token exactly `length` characters long."""
    kid = Key.hmac(SECRET).kid
    for extra in range(4):  # header padding, to reach lengths base64 cannot
        header = {"alg": "HS256", "typ": "at+jwt", "kid": kid, "x": "x" * extra}
        start = (length - len(forge(header, payload(pad="")))) * 3 // 4 - 8
        for pad in range(max(0, start), length):
            made = forge(header, payload(pad="p" * pad))
            if len(made) == length:
                return made
            if len(made) > length:
                break
    raise AssertionError(f"no token of {length} characters")


def test_a_token_of_exactly_the_maximum_length_verifies_one_more_does_not() -> None:
    assert verifier().verify(_exactly(MAX_TOKEN_LENGTH), now=NOW)["sub"] == "alice"
    with pytest.raises(MalformedToken):
        verifier().verify(_exactly(MAX_TOKEN_LENGTH + 1), now=NOW)


def test_a_token_seen_before_is_answered_from_memory() -> None:
    v = verifier()
    t = token(v)
    assert v.verify(t, now=NOW) is v.verify(t, now=NOW + 1)


# -- keys -------------------------------------------------------------------------------


def test_the_kid_of_an_rsa_key_is_its_rfc_7638_thumbprint() -> None:
    public = rsa.RSAPublicNumbers(65537, int.from_bytes(unb64(RFC7638_N), "big")).public_key()
    key = Key.from_pem("RS256", public_pem=pem(public))
    assert key.kid == RFC7638_THUMBPRINT[:22]


KEYGEN: dict[str, Callable[[], Any]] = {
    "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "EdDSA": ed25519.Ed25519PrivateKey.generate,
}


@pytest.mark.parametrize("alg", list(KEYGEN))
def test_the_kid_of_an_ec_or_okp_key_is_its_rfc_7638_thumbprint(alg: str) -> None:
    public = KEYGEN[alg]().public_key()
    if alg == "ES256":
        numbers = public.public_numbers()
        members = {
            "crv": "P-256",
            "kty": "EC",
            "x": b64(numbers.x.to_bytes(32, "big")),
            "y": b64(numbers.y.to_bytes(32, "big")),
        }
    else:
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        members = {"crv": "Ed25519", "kty": "OKP", "x": b64(raw)}
    assert Key.from_pem(alg, public_pem=pem(public)).kid == thumbprint(members)[:22]


def test_a_jwks_entry_names_its_key_algorithm_and_use() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key = Key.from_pem("RS256", private_pem=private_bytes(private))
    (entry,) = KeyRing([key]).jwks()["keys"]
    assert (entry["kid"], entry["alg"], entry["use"], entry["kty"]) == (
        key.kid,
        "RS256",
        "sig",
        "RSA",
    )


@pytest.mark.parametrize("alg", ["HS256", "none", "RS1"])
def test_from_pem_refuses_an_algorithm_it_does_not_support_and_lists_those_it_does(
    alg: str,
) -> None:
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(ConfigError) as info:
        Key.from_pem(alg, public_pem=pem(public))
    assert f"({', '.join(tokens.ASYMMETRIC_ALGORITHMS)})" in str(info.value)


@pytest.mark.parametrize("error", [ValueError, TypeError])
def test_a_signature_check_that_raises_fails_closed(
    monkeypatch: pytest.MonkeyPatch, error: type[Exception]
) -> None:
    key = Key.from_pem(
        "ES256", public_pem=pem(ec.generate_private_key(ec.SECP256R1()).public_key())
    )

    def raising(*args: object) -> bool:
        raise error("the library could not check it")

    monkeypatch.setattr(tokens._ALGORITHMS["ES256"], "verify", raising)
    assert key.verify(b"message", b"signature") is False


def test_a_verifier_has_no_leeway_unless_given_one() -> None:
    v = TokenVerifier(KeyRing([Key.hmac(SECRET)]), issuer="authgate", audience="authgate")
    with pytest.raises(ExpiredToken):
        v.verify(token(v), now=NOW + 300)


def test_a_verifier_issues_tokens_of_its_own_type() -> None:
    v = TokenVerifier(KeyRing([Key.hmac(SECRET)]), issuer="i", audience="a", typ="x+jwt")
    t = token(v)
    assert json.loads(unb64(t.split(".")[0]))["typ"] == "x+jwt"
    assert v.verify(t, now=NOW)["sub"] == "alice"


def test_every_base64url_spelling_round_trips() -> None:
    """The last character of a segment can be any of the 64 (``X`` included): none is
    trimmed with the padding."""
    raws = [b"ab" + bytes([i]) for i in range(256)] + [b"a" + bytes([i]) for i in range(256)]
    encoded = [tokens._b64encode(raw) for raw in raws]
    assert {e[-1] for e in encoded} == set(string.ascii_letters + string.digits + "-_")
    assert [tokens._b64decode(e) for e in encoded] == raws
    assert encoded == [b64(raw) for raw in raws]


# -- HMAC keys and rings ----------------------------------------------------------------


def test_an_hmac_secret_is_refused_below_32_bytes_unless_in_dev_mode() -> None:
    with pytest.raises(ConfigError, match="too short"):
        Key.hmac(RANDOM_32[:31])
    assert Key.hmac(RANDOM_32[:31], dev_mode=True).algorithm == "HS256"
    assert Key.hmac(RANDOM_32).algorithm == "HS256"


@pytest.mark.parametrize("raw", [SECRET.encode(), bytearray(SECRET.encode())])
def test_an_hmac_secret_may_be_given_as_bytes(raw: bytes) -> None:
    key = Key.hmac(raw)
    assert (key.kid, key.signing_key) == (Key.hmac(SECRET).kid, SECRET.encode())


def test_the_kid_of_an_hmac_key_is_a_stable_digest_of_its_secret() -> None:
    """Live tokens name their key by kid: the derivation may not change across versions
    (or workers running two versions would refuse each other's tokens)."""
    digest = hashlib.sha256(b"authgate-kid:" + SECRET.encode()).hexdigest()
    assert Key.hmac(SECRET).kid == "hs-" + digest[:16]


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_a_ring_from_settings_signs_with_the_hmac_algorithm_configured(alg: str) -> None:
    from authgate import Settings

    ring = KeyRing.from_settings(Settings(algorithm=alg, secret_key=SECRET))
    assert [k.algorithm for k in ring.keys] == [alg]
    t = TokenVerifier(ring, issuer="i", audience="a").issue({"sub": "a"}, 60)
    assert json.loads(unb64(t.split(".")[0]))["alg"] == alg


def test_an_unsupported_algorithm_is_refused_naming_the_supported_ones() -> None:
    from authgate import Settings

    supported = ", ".join([*tokens.HMAC_ALGORITHMS, *tokens.ASYMMETRIC_ALGORITHMS])
    with pytest.raises(ConfigError) as info:
        KeyRing.from_settings(Settings(algorithm="XS1", secret_key=SECRET))
    assert supported in str(info.value)


def test_the_secret_material_of_an_asymmetric_ring_is_a_digest_of_its_private_key() -> None:
    """It keys the SCRAM handshake state that workers hand each other: derived from the
    private key only, the same in every process and version."""
    private = ec.generate_private_key(ec.SECP256R1())
    der = private_bytes(private, serialization.Encoding.DER)
    key = Key.from_pem("ES256", private_pem=private_bytes(private))
    material = KeyRing([key]).secret_material()
    assert material == hashlib.sha256(b"authgate-secret:" + der).digest()
    assert der not in material


def test_a_token_is_compact_json_in_every_segment() -> None:
    """No spaces after separators: a token rides in every request's header, and its size
    is the cost of every one of them."""
    claims = {"sub": "alice", "roles": ["a", "b"], "exp": 2_000_000_000}
    token = KeyRing([Key.hmac(SECRET)]).sign(claims)
    header_b64, payload_b64, _ = token.split(".")
    for segment in (header_b64, payload_b64):
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        assert b" " not in raw
    payload = base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4))
    assert payload == json.dumps(claims, separators=(",", ":")).encode()


# -- the weak-secret estimate at its edges ---------------------------------------------------

WORDS = "it is mostly words such as 'secret' or 'changeme'"
RUNS = "it repeats a short pattern or runs through neighbouring characters"


def _steps(start: str, steps: list[int]) -> str:
    text = start
    for step in steps:
        text += chr(ord(text[-1]) + step)
    return text


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        ("secret" * 6, WORDS),
        ("changeme" + "q8#z!m2k", WORDS),  # 8 characters left: under 16
        ("secret" + "q8#z!m2k@w5&x9%b", "it carries about 64 bits of entropy, at least 80 needed"),
        ("q8#z!m2k" * 6, RUNS),  # 48 characters, one 8-character block
        ("q8#z!m2k@w5&x9%b", "it carries about 64 bits of entropy, at least 80 needed"),
        # 12 of 16 steps of one (exactly three quarters) and 4 of two: not a run.
        (_steps("a", [1, 1, 1, 2] * 4), "it carries about 69 bits of entropy, at least 80 needed"),
        (_steps("a", [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3]), RUNS),  # 13 of 16
        # Four letters ten times each, far apart: exactly 80 bits, just enough.
        ("kwbwwqqkbwwbbqqqqwwbkbwqkkqkkbkbwqqbwkkb", None),
    ],
    ids=["words", "few-left", "sixteen-left", "repeated-block", "sixteen", "three-quarters",
         "more-than-three-quarters", "exactly-80-bits"],
)  # fmt: skip
def test_the_weak_secret_estimate_at_each_of_its_bounds(secret: str, reason: str | None) -> None:
    assert tokens.secret_weakness(secret.encode("latin-1")) == reason


def test_a_public_key_file_must_be_the_private_keys_own_half(tmp_path: Any) -> None:
    from authgate.config import Settings

    mine, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "key.pem").write_bytes(private_bytes(mine))
    (tmp_path / "pub.pem").write_bytes(pem(mine.public_key()))
    (tmp_path / "other.pem").write_bytes(pem(other.public_key()))

    def ring(public: str) -> KeyRing:
        return KeyRing.from_settings(
            Settings(algorithm="ES256", private_key_file=str(tmp_path / "key.pem"),
                     public_key_file=str(tmp_path / public))
        )  # fmt: skip

    token = ring("pub.pem").sign(payload())
    verifier = TokenVerifier(ring("pub.pem"), issuer="authgate", audience="authgate")
    assert verifier.verify(token, now=NOW + 1)["sub"] == payload()["sub"]
    with pytest.raises(ConfigError, match="the public key is not the private key's"):
        ring("other.pem")
