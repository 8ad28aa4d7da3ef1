"""Tokens: the tampering matrix, key rotation, asymmetric keys, JWKS, pyjwt interop."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from authgate import Settings
from authgate.errors import (
    ConfigError,
    ExpiredToken,
    InvalidSignature,
    InvalidToken,
    InvalidTokenClaims,
    MalformedToken,
    TokenNotYetValid,
    UnknownKey,
)
from authgate.tokens import Key, KeyRing, TokenPair, TokenVerifier

SECRET = "test-secret-key-that-is-long-enough-0123456789"
OTHER = "another-secret-key-that-is-long-enough-42424242"


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def enc(obj: Any) -> str:
    return b64(json.dumps(obj).encode())


def verifier(*secrets: str, leeway: float = 0) -> TokenVerifier:
    ring = KeyRing(Key.hmac(s) for s in (secrets or (SECRET,)))
    return TokenVerifier(ring, issuer="authgate", audience="authgate", leeway=leeway)


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": "authgate",
        "aud": "authgate",
        "sub": "alice",
        "iat": now,
        "exp": now + 300,
        "jti": "j1",
        "sid": "s1",
        "ver": 1,
        "roles": ["viewer"],
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not ...}


def forge(
    payload: dict[str, Any],
    *,
    key: bytes | None = SECRET.encode(),
    alg: str = "HS256",
    header: dict[str, Any] | None = None,
    digest: Any = hashlib.sha256,
) -> str:
    """Sign a token by hand, the way an attacker would."""
    head: dict[str, Any] = {"alg": alg, "typ": "at+jwt", "kid": Key.hmac(SECRET).kid}
    head.update(header or {})
    head = {k: v for k, v in head.items() if v is not ...}
    signing_input = f"{enc(head)}.{enc(payload)}"
    sig = hmac.new(key, signing_input.encode(), digest).digest() if key is not None else b""
    return f"{signing_input}.{b64(sig)}"


def test_issued_token_verifies_and_carries_the_claims() -> None:
    v = verifier()
    token = v.issue({"sub": "alice", "sid": "s1", "ver": 3}, ttl=60)
    got = v.verify(token)
    assert (got["sub"], got["sid"], got["ver"], got["iss"], got["aud"]) == (
        "alice",
        "s1",
        3,
        "authgate",
        "authgate",
    )
    assert got["exp"] - got["iat"] == 60
    assert len(got["jti"]) == 32
    assert forge(claims()) and v.verify(forge(claims()))["sub"] == "alice"


NONE_CASES = ["none", "None", "NONE", "nOnE"]
TAMPERED: list[tuple[str, Any, type[Exception]]] = [
    *[
        (f"alg-{a}-unsigned", lambda a=a: forge(claims(), alg=a, key=None), InvalidSignature)
        for a in NONE_CASES
    ],
    *[
        (f"alg-{a}-signed", lambda a=a: forge(claims(), alg=a), InvalidSignature)
        for a in NONE_CASES
    ],
    (
        "alg-none-no-kid",
        lambda: forge(claims(), alg="none", key=None, header={"kid": ...}),
        InvalidSignature,
    ),
    ("hs256-wrong-key", lambda: forge(claims(), key=OTHER.encode()), InvalidSignature),
    ("hs256-empty-key", lambda: forge(claims(), key=b""), InvalidSignature),
    (
        "hs512-declared-hs256-key",
        lambda: forge(claims(), alg="HS512", digest=hashlib.sha512),
        InvalidSignature,
    ),
    ("rs256-declared", lambda: forge(claims(), alg="RS256"), InvalidSignature),
    ("signature-stripped", lambda: forge(claims()).rsplit(".", 1)[0] + ".", InvalidSignature),
    ("payload-swapped", lambda: _swap_payload(), InvalidSignature),
    ("other-issuer", lambda: forge(claims(iss="evil")), InvalidTokenClaims),
    ("other-audience", lambda: forge(claims(aud="other-app")), InvalidTokenClaims),
    ("audience-list-without-us", lambda: forge(claims(aud=["a", "b"])), InvalidTokenClaims),
    ("expired", lambda: forge(claims(exp=int(time.time()) - 1)), ExpiredToken),
    ("nbf-ahead", lambda: forge(claims(nbf=int(time.time()) + 60)), TokenNotYetValid),
    ("iat-ahead", lambda: forge(claims(iat=int(time.time()) + 60)), TokenNotYetValid),
    *[
        (f"missing-{c}", lambda c=c: forge(claims(**{c: ...})), InvalidTokenClaims)
        for c in ("exp", "iat", "iss", "aud", "sub", "jti", "sid", "ver")
    ],
    ("exp-as-list", lambda: forge(claims(exp=[1])), InvalidTokenClaims),
    ("exp-as-string", lambda: forge(claims(exp="9999999999")), InvalidTokenClaims),
    ("exp-as-bool", lambda: forge(claims(exp=True)), InvalidTokenClaims),
    ("ver-as-string", lambda: forge(claims(ver="1")), InvalidTokenClaims),
    ("roles-as-string", lambda: forge(claims(roles="admin")), InvalidTokenClaims),
    ("wrong-typ", lambda: forge(claims(), header={"typ": "JWT"}), InvalidTokenClaims),
    ("refresh-typ", lambda: forge(claims(), header={"typ": "rt+jwt"}), InvalidTokenClaims),
    ("crit-header", lambda: forge(claims(), header={"crit": ["exp"]}), InvalidTokenClaims),
    ("unknown-kid", lambda: forge(claims(), header={"kid": "hs-0000"}), UnknownKey),
    ("kid-not-string", lambda: forge(claims(), header={"kid": 7}), UnknownKey),
    (
        "jku-ignored-wrong-key",
        lambda: forge(
            claims(), key=OTHER.encode(), header={"jku": "https://evil/jwks", "kid": ...}
        ),
        InvalidSignature,
    ),
    (
        "embedded-jwk-ignored",
        lambda: forge(
            claims(), key=OTHER.encode(), header={"jwk": {"kty": "oct", "k": b64(OTHER.encode())}}
        ),
        InvalidSignature,
    ),
    ("payload-not-object", lambda: _signed_raw(b"[1,2]"), MalformedToken),
    ("payload-not-json", lambda: _signed_raw(b"{not json"), MalformedToken),
    ("header-not-json", lambda: "bm90anNvbg." + enc(claims()) + ".c2ln", MalformedToken),
    ("header-not-object", lambda: enc([1]) + "." + enc(claims()) + ".c2ln", MalformedToken),
    ("empty", lambda: "", MalformedToken),
    ("one-segment", lambda: "abc", MalformedToken),
    ("two-segments", lambda: "abc.def", MalformedToken),
    ("four-segments", lambda: forge(claims()) + ".x", MalformedToken),
    ("garbage-chars", lambda: "a$b.c d.e!f", MalformedToken),
    ("padding-chars", lambda: forge(claims()) + "==", MalformedToken),
    ("not-a-string", lambda: 12345, MalformedToken),
    ("oversize", lambda: "a" * 9000 + ".b.c", MalformedToken),
]


def _swap_payload() -> str:
    head, _, sig = forge(claims()).split(".")
    return f"{head}.{enc(claims(sub='root', roles=['admin']))}.{sig}"


def _signed_raw(payload: bytes) -> str:
    head = enc({"alg": "HS256", "typ": "at+jwt", "kid": Key.hmac(SECRET).kid})
    signing_input = f"{head}.{b64(payload)}"
    sig = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(sig)}"


@pytest.mark.parametrize(
    ("make", "error"), [(m, e) for _, m, e in TAMPERED], ids=[name for name, _, _ in TAMPERED]
)
def test_tampering_matrix(make: Any, error: type[Exception]) -> None:
    v = verifier()
    token = make()
    with pytest.raises(error) as info:
        v.verify(token)
    assert isinstance(info.value, InvalidToken)
    assert info.value.status == 401
    assert SECRET not in info.value.detail


def test_leeway_admits_small_clock_skew() -> None:
    token = forge(claims(exp=int(time.time()) - 5, iat=int(time.time()) - 60))
    with pytest.raises(ExpiredToken):
        verifier().verify(token)
    assert verifier(leeway=10).verify(token)["sub"] == "alice"


def test_cached_token_still_expires() -> None:
    v = verifier()
    token = v.issue({"sub": "a", "sid": "s", "ver": 1}, ttl=10)
    v.verify(token)
    with pytest.raises(ExpiredToken):
        v.verify(token, now=time.time() + 11)


def test_rotation_old_token_still_valid_and_retired_key_rejected() -> None:
    old = verifier(OTHER)
    token = old.issue({"sub": "alice", "sid": "s", "ver": 1}, ttl=60)
    rotated = verifier(SECRET, OTHER)  # new key signs, old still verifies
    assert rotated.verify(token)["sub"] == "alice"
    new_token = rotated.issue({"sub": "bob", "sid": "s", "ver": 1}, ttl=60)
    assert json.loads(base64.urlsafe_b64decode(new_token.split(".")[0] + "=="))["kid"] == (
        Key.hmac(SECRET).kid
    )
    retired = verifier(SECRET)
    assert retired.verify(new_token)["sub"] == "bob"
    with pytest.raises(UnknownKey):
        retired.verify(token)


def test_rotation_from_settings() -> None:
    before = KeyRing.from_settings(Settings(secret_key=OTHER))
    after = KeyRing.from_settings(Settings(secret_key=SECRET, previous_secret_keys=(OTHER,)))
    assert after.current.kid == Key.hmac(SECRET).kid
    assert {k.kid for k in after.keys} == {Key.hmac(SECRET).kid, before.current.kid}


def test_short_secret_refused_outside_dev_mode() -> None:
    with pytest.raises(ConfigError, match="too short.*secrets.token_urlsafe"):
        KeyRing.from_settings(Settings(secret_key="short"))
    ring = KeyRing.from_settings(Settings(secret_key="short", dev_mode=True))
    assert ring.current.algorithm == "HS256"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (Settings(), "AUTHGATE_SECRET_KEY is not set"),
        (Settings(algorithm="none", secret_key=SECRET), "never accepted"),
        (Settings(algorithm="XS1", secret_key=SECRET), "unsupported AUTHGATE_ALGORITHM"),
        (Settings(algorithm="RS256"), "AUTHGATE_PRIVATE_KEY_FILE"),
        (Settings(algorithm="RS256", private_key_file="/nonexistent.pem"), "cannot read"),
    ],
)
def test_key_configuration_errors_say_what_to_do(settings: Settings, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        KeyRing.from_settings(settings)


def _pem_files(tmp_path: Path, name: str, private: Any) -> tuple[str, str]:
    priv = tmp_path / f"{name}.pem"
    pub = tmp_path / f"{name}.pub.pem"
    priv.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pub.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return str(priv), str(pub)


KEYGEN = {
    "RS256": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "EdDSA": ed25519.Ed25519PrivateKey.generate,
}


@pytest.mark.parametrize("alg", list(KEYGEN))
def test_asymmetric_keys_from_pem_files_jwks_and_pyjwt_interop(tmp_path: Path, alg: str) -> None:
    priv, pub = _pem_files(tmp_path, "current", KEYGEN[alg]())
    settings = Settings(algorithm=alg, private_key_file=priv, public_key_file=pub)
    ring = KeyRing.from_settings(settings)
    v = TokenVerifier(ring, issuer="authgate", audience="authgate")
    token = v.issue({"sub": "alice", "sid": "s", "ver": 1}, ttl=60)
    assert v.verify(token)["sub"] == "alice"

    jwks = ring.jwks()
    assert [k["kid"] for k in jwks["keys"]] == [ring.current.kid]
    assert "d" not in jwks["keys"][0]  # public parts only
    public = jwt.PyJWK(jwks["keys"][0])
    decoded = jwt.decode(
        token, public.key, algorithms=[alg], audience="authgate", issuer="authgate"
    )
    assert decoded["sub"] == "alice"

    # Rotation: a new key signs, the old public key still verifies until retired.
    priv2, _ = _pem_files(tmp_path, "next", KEYGEN[alg]())
    rotated = KeyRing.from_settings(
        settings.replace(
            private_key_file=priv2, public_key_file=None, previous_public_key_files=(pub,)
        )
    )
    v2 = TokenVerifier(rotated, issuer="authgate", audience="authgate")
    assert v2.verify(token)["sub"] == "alice"
    assert len(rotated.jwks()["keys"]) == 2


def test_rs256_ring_refuses_hs256_token_signed_with_the_public_key(tmp_path: Path) -> None:
    priv, pub = _pem_files(tmp_path, "k", KEYGEN["RS256"]())
    ring = KeyRing.from_settings(Settings(algorithm="RS256", private_key_file=priv))
    v = TokenVerifier(ring, issuer="authgate", audience="authgate")
    public_pem = Path(pub).read_bytes()
    token = forge(claims(), key=public_pem, header={"kid": ring.current.kid})
    with pytest.raises(InvalidSignature):
        v.verify(token)


def test_hmac_ring_publishes_no_keys() -> None:
    assert KeyRing([Key.hmac(SECRET)]).jwks() == {"keys": []}


def test_pyjwt_reads_our_tokens_and_we_read_pyjwts() -> None:
    v = verifier()
    ours = v.issue({"sub": "alice", "sid": "s", "ver": 1}, ttl=60)
    assert jwt.decode(ours, SECRET, algorithms=["HS256"], audience="authgate")["sub"] == "alice"
    theirs = jwt.encode(
        claims(), SECRET, algorithm="HS256", headers={"typ": "at+jwt", "kid": Key.hmac(SECRET).kid}
    )
    assert v.verify(theirs)["sub"] == "alice"


def test_a_verifier_remembers_at_most_cache_size_tokens_and_one_key_per_header() -> None:
    from authgate.caches import TOKEN_HEADERS

    ring = KeyRing([Key.hmac(SECRET)])
    v = TokenVerifier(ring, issuer="authgate", audience="authgate", cache_size=2)
    tokens = [v.issue({"sub": "alice", "sid": f"s{i}", "ver": 1}, ttl=60) for i in range(3)]
    TOKEN_HEADERS.reset()
    for token in tokens:
        assert v.verify(token)["sub"] == "alice"
    assert v.cache_size == 2 and len(v._verified) == 2 and tokens[0] not in v._verified
    assert len(v._headers) == 1  # one header, verified once, its key remembered
    assert (TOKEN_HEADERS.hits, TOKEN_HEADERS.misses) == (2, 1)


def test_a_token_pair_is_the_oauth2_token_response() -> None:
    pair = TokenPair(access_token="a.b.c", refresh_token="r", expires_in=900, session_id="s")
    assert pair.to_dict() == {
        "access_token": "a.b.c",
        "token_type": "bearer",
        "expires_in": 900,
        "refresh_token": "r",
    }


# -- the cold path's shortcut (`_verify_known_shape`) against the full path ------------


def _outcome(check: Any, token: str, now: float) -> object:
    """What a verification path says of `token`: its claims, its refusal, or None."""
    try:
        claims = check(token, now)
    except InvalidToken as err:
        return (type(err), str(err))
    return None if claims is None else dict(claims)


def _verifier_with_known_header() -> tuple[TokenVerifier, str]:
    v = TokenVerifier(KeyRing([Key.hmac(SECRET)]), issuer="authgate", audience="authgate")
    token = v.issue({"sub": "alice", "sid": "s1", "ver": 3, "roles": ["viewer"]}, ttl=600)
    v.verify(v.issue({"sub": "bob", "sid": "s2", "ver": 1}, ttl=600))  # the header is known
    return v, token


@settings(max_examples=400, deadline=None)
@given(
    position=st.integers(min_value=0, max_value=2000),
    char=st.sampled_from([*"AQgw-_+/=.~ \n\x00é", "==", ".."]),
    mode=st.sampled_from(["replace", "insert", "delete", "truncate"]),
)
def test_the_cold_shortcut_accepts_nothing_the_full_path_refuses(
    position: int, char: str, mode: str
) -> None:
    v, token = _verifier_with_known_header()
    i = position % (len(token) + 1)
    mutated = {
        "replace": token[:i] + char + token[i + 1 :],
        "insert": token[:i] + char + token[i:],
        "delete": token[:i] + token[i + 1 :],
        "truncate": token[:i],
    }[mode]
    now = time.time()
    fast = _outcome(v._verify_known_shape, mutated, now)
    slow = _outcome(v._verify_uncached, mutated, now)
    if fast is not None:
        assert fast == slow, mutated
    if mutated == token:
        assert fast == slow and isinstance(fast, dict)


def test_the_cold_shortcut_refuses_other_spellings_of_a_valid_signature() -> None:
    v, token = _verifier_with_known_header()
    head, payload, signature = token.split(".")
    # 32 signature bytes spell 43 characters whose last carries 2 unused bits: the same
    # bytes have three other spellings, each refused.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(signature[-1])
    for other in alphabet[last & ~3 : (last & ~3) + 4]:
        if other == signature[-1]:
            continue
        twin = f"{head}.{payload}.{signature[:-1]}{other}"
        assert base64.urlsafe_b64decode(twin.split(".")[2] + "=") == base64.urlsafe_b64decode(
            signature + "="
        )
        assert v._verify_known_shape(twin, time.time()) is None
        with pytest.raises(MalformedToken):
            v.verify(twin)
    with pytest.raises(MalformedToken):
        v.verify(token + "=")


def test_the_cold_shortcut_refuses_a_signed_payload_spelt_two_ways() -> None:
    """Even a signature made with the key over a non-canonical payload spelling is
    refused: a token has exactly one spelling, on both paths."""
    v, _ = _verifier_with_known_header()
    for sid in ("s", "s1", "s12"):  # a payload whose last character has unused bits
        token = v.issue({"sub": "alice", "sid": sid, "ver": 3}, ttl=600)
        head, payload, _ = token.split(".")
        if len(payload) % 4:
            break
    assert len(payload) % 4
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    other = alphabet[alphabet.index(payload[-1]) ^ 1]
    twin_payload = payload[:-1] + other
    digest = hmac.digest(SECRET.encode(), f"{head}.{twin_payload}".encode(), "sha256")
    sig = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    twin = f"{head}.{twin_payload}.{sig}"
    assert v._verify_known_shape(twin, time.time()) is None
    with pytest.raises(MalformedToken):
        v.verify(twin)


def test_a_cold_token_is_checked_as_fully_through_the_shortcut() -> None:
    v, _ = _verifier_with_known_header()
    expired = v.issue({"sub": "alice", "sid": "s", "ver": 1}, ttl=-1)
    with pytest.raises(ExpiredToken):
        v._verify_known_shape(expired, time.time())
    bad_ver = v.issue({"sub": "alice", "sid": "s", "ver": True}, ttl=60)
    with pytest.raises(InvalidTokenClaims):
        v._verify_known_shape(bad_ver, time.time())
    assert v._verify_known_shape(v.issue({"sub": "a", "sid": "s", "ver": 1}, ttl=60), time.time())


def _signed(v: TokenVerifier, claims: str, head: str) -> str:
    """A token signed with the test key over the JSON text `claims` exactly as given."""
    payload = base64.urlsafe_b64encode(claims.encode()).rstrip(b"=").decode()
    digest = hmac.digest(SECRET.encode(), f"{head}.{payload}".encode(), "sha256")
    return f"{head}.{payload}.{base64.urlsafe_b64encode(digest).rstrip(b'=').decode()}"


@pytest.mark.parametrize("depth", [33, 40, 960])
def test_a_signed_payload_nested_too_deep_is_refused_on_both_paths(depth: int) -> None:
    v, token = _verifier_with_known_header()
    now = int(time.time())
    claims: dict[str, Any] = {"iss": "authgate", "aud": "authgate", "iat": now}
    claims |= {"exp": now + 60, "jti": "j", "sub": "alice", "sid": "s", "ver": 1}
    text = (
        json.dumps(claims)[:-1] + ', "deep": ' + "[" * (depth - 1) + "1" + "]" * (depth - 1) + "}"
    )
    deep = _signed(v, text, token.split(".")[0])
    assert v._verify_known_shape(deep, time.time()) is None
    with pytest.raises(MalformedToken):
        v.verify(deep)


def test_a_header_is_remembered_only_once_a_signature_checks() -> None:
    v = TokenVerifier(KeyRing([Key.hmac(SECRET)]), issuer="authgate", audience="authgate")
    token = v.issue({"sub": "alice", "sid": "s", "ver": 1}, ttl=60)
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{signature[::-1]}"
    with pytest.raises((InvalidSignature, MalformedToken)):
        v.verify(forged)
    assert len(v._headers) == 0  # a forged token leaves nothing behind
    v.verify(token)
    assert head in v._headers


def test_a_key_pickles_and_copies_with_its_hmac_made_anew() -> None:
    import copy
    import pickle

    key = Key.hmac(SECRET)
    for twin in (pickle.loads(pickle.dumps(key)), copy.deepcopy(key)):  # noqa: S301 - our own bytes
        assert twin == key
        assert twin.hmac_signature(b"message") == key.hmac_signature(b"message")
