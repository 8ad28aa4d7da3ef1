"""Access tokens: JWTs signed and verified with a `KeyRing`.

Security choices come from configuration, never from the token: the algorithm must be
on the ring's allow-list (``none`` never is), ``kid`` is only an index into the local
ring (``jku``, ``x5u`` and embedded ``jwk`` headers are ignored), the header must say
``typ: at+jwt`` (RFC 8725 3.11), and the required claims are checked after the
signature.  The signature maths is pyjwt's (`jwt.algorithms`) and the stdlib's
(`hmac`, for HMAC keys); the parsing around it is ours, so a token seen for the first
time costs one HMAC and one small JSON parse (about a fifth of a `jwt.decode` of it),
and a token seen before costs a dict lookup.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
import json
import math
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Generic, TypeGuard, TypeVar, overload

import jwt
import msgspec
from jwt.algorithms import get_default_algorithms

from . import documents
from .caches import LRU, TOKEN_HEADERS, VERIFIED_TOKENS
from .errors import (
    ConfigError,
    ExpiredToken,
    InvalidSignature,
    InvalidTokenClaims,
    MalformedToken,
    TokenNotYetValid,
    UnknownKey,
)

__all__ = ["ACCESS_TOKEN_TYPE", "Key", "KeyRing", "TokenVerifier"]

ACCESS_TOKEN_TYPE = "at+jwt"
HMAC_ALGORITHMS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
# The digests by name, as `hmac.new` takes them.
_HMAC_DIGESTS = {"HS256": "sha256", "HS384": "sha384", "HS512": "sha512"}
ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA")
MIN_SECRET_BYTES = 32
MAX_TOKEN_LENGTH = 8192

_T = TypeVar("_T")
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_ALGORITHMS = get_default_algorithms()
_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
# A payload whose signature checked is authgate's own JSON: msgspec parses it in a
# fifth of `json.loads`'s time (a JSON object, or a refusal that sends the token down
# the path that words it).
_decode_signed_claims = msgspec.json.Decoder(dict[str, Any]).decode
_SECRET_HINT = "generate one with `python -c 'import secrets; print(secrets.token_urlsafe(48))'`"


def _b64decode(segment: str) -> bytes:
    """Decode unpadded base64url, refusing every encoding but the canonical one: a token
    has exactly one spelling (no padding, no stray bits in the last character)."""
    try:
        data = segment.encode("ascii")
    except UnicodeEncodeError as err:  # a ValueError, as every refusal here
        raise ValueError("not base64url") from err
    raw = binascii.a2b_base64(data.translate(_FROM_URLSAFE) + b"=" * (-len(data) % 4))
    if _b64encode(raw) != segment:
        raise ValueError("not canonical base64url")
    return raw


def _frozen(value: Any) -> Any:
    """Freshly decoded JSON made read-only: objects become mapping proxies (over the
    decoded dicts themselves, which nothing else holds), arrays tuples."""
    if type(value) is dict:
        for k, v in value.items():  # values replaced in place: the dict keeps its size
            if type(v) not in _JSON_SCALARS:
                value[k] = _frozen(v)
        return MappingProxyType(value)
    if type(value) is list:
        return tuple(v if type(v) in _JSON_SCALARS else _frozen(v) for v in value)
    return value


@dataclass(frozen=True, slots=True)
class Key:
    """One signing or verifying key.  ``signing_key`` is None for verify-only keys."""

    kid: str
    algorithm: str
    verifying_key: Any = field(repr=False)
    signing_key: Any = field(default=None, repr=False)
    public_jwk: Mapping[str, Any] | None = field(default=None, repr=False)
    # An HMAC keyed once: each verification copies it (the stdlib's documented way to
    # share a prefix), half the cost of keying HMAC afresh.
    _keyed: hmac.HMAC | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        digest = _HMAC_DIGESTS.get(self.algorithm)
        if digest is not None:
            object.__setattr__(self, "_keyed", hmac.new(self.verifying_key, digestmod=digest))

    def __reduce__(self) -> tuple[Any, ...]:
        # Copied and pickled as what it was built from: the keyed HMAC is made anew.
        jwk = None if self.public_jwk is None else dict(self.public_jwk)
        return Key, (self.kid, self.algorithm, self.verifying_key, self.signing_key, jwk)

    @classmethod
    def hmac(cls, secret: str | bytes, algorithm: str = "HS256", *, dev_mode: bool = False) -> Key:
        """An HMAC key; a secret shorter than 32 bytes is refused outside dev mode."""
        if algorithm not in HMAC_ALGORITHMS:
            raise ConfigError(f"{algorithm} is not an HMAC algorithm (HS256, HS384, HS512)")
        raw = secret.encode() if isinstance(secret, str) else bytes(secret)
        if len(raw) < MIN_SECRET_BYTES and not dev_mode:
            raise ConfigError(
                f"AUTHGATE_SECRET_KEY is too short ({len(raw)} bytes, at least "
                f"{MIN_SECRET_BYTES} needed): {_SECRET_HINT}"
            )
        weakness = secret_weakness(raw)
        if weakness and not dev_mode:
            raise ConfigError(f"AUTHGATE_SECRET_KEY is weak: {weakness}; {_SECRET_HINT}")
        kid = "hs-" + hashlib.sha256(b"authgate-kid:" + raw).hexdigest()[:16]
        return cls(kid, algorithm, raw, raw)

    @classmethod
    def from_pem(
        cls,
        algorithm: str,
        *,
        private_pem: bytes | None = None,
        public_pem: bytes | None = None,
    ) -> Key:
        """An asymmetric key (RS*, ES*, PS256, EdDSA) from PEM bytes.  With only the
        public key the result verifies but cannot sign."""
        if algorithm not in ASYMMETRIC_ALGORITHMS:
            raise ConfigError(
                f"{algorithm} is not a supported asymmetric algorithm "
                f"({', '.join(ASYMMETRIC_ALGORITHMS)})"
            )
        impl: Any = _ALGORITHMS[algorithm]
        try:
            signing = impl.prepare_key(private_pem) if private_pem else None
            if public_pem:
                verifying = impl.prepare_key(public_pem)
            elif signing is not None:
                verifying = signing.public_key()
            else:
                raise ConfigError("an asymmetric key needs a private or a public PEM")
        except (ValueError, TypeError, jwt.InvalidKeyError) as err:
            raise ConfigError(f"cannot load the {algorithm} key: {err}") from err
        if signing is not None and impl.to_jwk(signing.public_key()) != impl.to_jwk(verifying):
            raise ConfigError(  # its own tokens would never verify
                "the public key is not the private key's: give the pair's public half, or none"
            )
        jwk = json.loads(impl.to_jwk(verifying))
        thumb_src = json.dumps(
            {k: jwk[k] for k in sorted(jwk) if k in ("crv", "e", "kty", "n", "x", "y")},
            separators=(",", ":"),
        )
        kid = base64.urlsafe_b64encode(hashlib.sha256(thumb_src.encode()).digest())[:22]
        kid_s = kid.decode()
        jwk.update({"kid": kid_s, "alg": algorithm, "use": "sig"})
        return cls(kid_s, algorithm, verifying, signing, jwk)

    @classmethod
    def from_pem_files(
        cls, algorithm: str, *, private_file: str | None = None, public_file: str | None = None
    ) -> Key:
        """`from_pem` reading the PEM files named."""

        def read(path: str | None) -> bytes | None:
            if not path:
                return None
            try:
                return Path(path).read_bytes()
            except OSError as err:
                raise ConfigError(f"cannot read key file {path}: {err}") from err

        return cls.from_pem(algorithm, private_pem=read(private_file), public_pem=read(public_file))

    def sign(self, message: bytes) -> bytes:
        """The signature of `message` (HMAC or asymmetric)."""
        if self.signing_key is None:
            raise ConfigError(f"key {self.kid} can verify but not sign: it has no private key")
        digest = HMAC_ALGORITHMS.get(self.algorithm)
        if digest is not None:
            return hmac.new(self.signing_key, message, digest).digest()
        sig: bytes = _ALGORITHMS[self.algorithm].sign(message, self.signing_key)
        return sig

    def hmac_signature(self, message: bytes) -> str | None:
        """This HMAC key's signature of `message` as a token spells it (unpadded
        base64url); None for an asymmetric key."""
        if self._keyed is None:
            return None
        mac = self._keyed.copy()
        mac.update(message)
        return _b64encode(mac.digest())

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True when `signature` is this key's signature of `message` (constant time)."""
        digest = HMAC_ALGORITHMS.get(self.algorithm)
        if digest is not None:
            expected = hmac.new(self.verifying_key, message, digest).digest()
            return hmac.compare_digest(expected, signature)
        try:
            ok: bool = _ALGORITHMS[self.algorithm].verify(message, self.verifying_key, signature)
        except (ValueError, TypeError):
            return False
        return ok


class KeyRing:
    """An ordered list of keys: the first signs, all of them verify.

    Rotation: put the new key first and keep the old one after it until every token
    it signed has expired; then drop it, and its tokens stop verifying.
    """

    __slots__ = ("_algorithms", "_by_kid", "_keys")

    def __init__(self, keys: Iterable[Key], *, verify_only: bool = False) -> None:
        self._keys = tuple(keys)
        if not self._keys:
            raise ConfigError(
                f"a key ring needs at least one key: set AUTHGATE_SECRET_KEY; {_SECRET_HINT}"
            )
        if self._keys[0].signing_key is None and not verify_only:
            raise ConfigError("the first key of a ring signs: it needs a private key")
        self._by_kid = MappingProxyType({key.kid: key for key in self._keys})
        if len(self._by_kid) != len(self._keys):
            raise ConfigError("two keys of the ring have the same kid")
        self._algorithms = frozenset(key.algorithm for key in self._keys)

    # Read-only: verifiers cache what a ring decided, so a ring never changes in place.
    # Rotate by building a new ring and giving it to the verifier (`TokenVerifier.ring`).
    @property
    def keys(self) -> tuple[Key, ...]:
        """The keys, newest (the signing one) first."""
        return self._keys

    @property
    def by_kid(self) -> Mapping[str, Key]:
        """The keys by ``kid``."""
        return self._by_kid

    @property
    def algorithms(self) -> frozenset[str]:
        """The algorithms a token may name: those of the ring's keys."""
        return self._algorithms

    def __repr__(self) -> str:
        return f"KeyRing({[k.kid for k in self.keys]!r})"

    @property
    def current(self) -> Key:
        """The key that signs new tokens."""
        return self.keys[0]

    @classmethod
    def from_settings(cls, settings: Any) -> KeyRing:
        """The ring a `Settings` describes: secret keys for HS*, PEM files otherwise."""
        algorithm = settings.algorithm
        if algorithm.lower() == "none":
            raise ConfigError("the 'none' algorithm is never accepted")
        if algorithm in HMAC_ALGORITHMS:
            if not settings.secret_key:
                raise ConfigError(f"AUTHGATE_SECRET_KEY is not set: {_SECRET_HINT}")
            secrets = [settings.secret_key, *settings.previous_secret_keys]
            return cls(Key.hmac(s, algorithm, dev_mode=settings.dev_mode) for s in secrets)
        if algorithm in ASYMMETRIC_ALGORITHMS:
            if not settings.private_key_file:
                raise ConfigError(
                    f"{algorithm} needs AUTHGATE_PRIVATE_KEY_FILE (and optionally "
                    "AUTHGATE_PUBLIC_KEY_FILE)"
                )
            keys = [
                Key.from_pem_files(
                    algorithm,
                    private_file=settings.private_key_file,
                    public_file=settings.public_key_file,
                )
            ]
            keys += [
                Key.from_pem_files(algorithm, public_file=path)
                for path in settings.previous_public_key_files
            ]
            return cls(keys)
        raise ConfigError(
            f"unsupported AUTHGATE_ALGORITHM {algorithm!r}: use one of "
            f"{', '.join([*HMAC_ALGORITHMS, *ASYMMETRIC_ALGORITHMS])}"
        )

    def secret_material(self) -> bytes:
        """Secret bytes for server-side derivations (never published): the HMAC secret,
        or the private key's DER encoding."""
        return _material(self.current.signing_key)

    def secret_materials(self) -> list[bytes]:
        """`secret_material` of every key of the ring that holds a secret, the current
        one first: what the current one seals, older ones still open after a rotation."""
        return [_material(key.signing_key) for key in self.keys if key.signing_key is not None]

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """The public keys as a JWKS document (empty for HMAC rings: secrets stay secret)."""
        return {"keys": [dict(k.public_jwk) for k in self.keys if k.public_jwk is not None]}

    def sign(self, claims: Mapping[str, Any], typ: str = ACCESS_TOKEN_TYPE) -> str:
        """Encode and sign `claims` with the current key."""
        key = self.current
        header = {"alg": key.algorithm, "kid": key.kid, "typ": typ}
        signing_input = (
            _b64encode(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64encode(json.dumps(claims, separators=(",", ":")).encode())
        )
        signature = key.sign(signing_input.encode("ascii"))
        return signing_input + "." + _b64encode(signature)


# Words people put in secrets; a secret that is mostly these is guessable.
_WEAK_WORDS = tuple(
    sorted(
        (
            "secret", "changeme", "change", "password", "passwd", "example", "default",
            "insecure", "authgate", "jwt", "token", "key", "test", "dev", "development",
            "production", "prod", "admin", "letmein", "qwerty", "please", "replace", "your",
            "here", "my", "app", "the",
        ),
        key=len,
        reverse=True,
    )
)  # fmt: skip
MIN_SECRET_BITS = 80


def _material(signing_key: Any) -> bytes:
    if isinstance(signing_key, bytes):
        return signing_key
    from cryptography.hazmat.primitives import serialization

    der: bytes = signing_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return hashlib.sha256(b"authgate-secret:" + der).digest()


def secret_weakness(raw: bytes) -> str | None:
    """Why an HMAC secret is guessable, or None.  An estimate, not a proof: the secret
    with the usual words taken out ("secret", "changeme", ...), a repeated block
    counted once, must not be three quarters a run (``aaaa``, ``abcd``, ``4321``), and must
    carry at least `MIN_SECRET_BITS` of Shannon entropy (``secrets.token_urlsafe(32)``
    carries about 200, ``'a' * 32`` none)."""
    text = raw.decode("latin-1").lower()
    for word in _WEAK_WORDS:
        text = text.replace(word, "")
    if len(text) < 16:
        return "it is mostly words such as 'secret' or 'changeme'"
    period = next(p for p in range(1, len(text) + 1) if text == (text[:p] * len(text))[: len(text)])
    text = text[:period]
    steps = [abs(ord(b) - ord(a)) for a, b in itertools.pairwise(text)]
    if len(text) < 16 or sum(step <= 1 for step in steps) * 4 > len(steps) * 3:
        return "it repeats a short pattern or runs through neighbouring characters"
    counts = Counter(text)
    bits = -sum(n * math.log2(n / len(text)) for n in counts.values())
    if bits < MIN_SECRET_BITS:
        return f"it carries about {bits:.0f} bits of entropy, at least {MIN_SECRET_BITS} needed"
    return None


def _b64encode(raw: bytes) -> str:
    return binascii.b2a_base64(raw, newline=False).rstrip(b"=").translate(_TO_URLSAFE).decode()


def _number(value: object) -> TypeGuard[int | float]:
    # JSON gives exactly int or float; bool is an int, and no number.
    return type(value) is int or type(value) is float


_NONE: list[str] = []


class _Forgetting(Generic[_T]):
    """A `TokenVerifier` setting (kept as ``_<name>``) whose change forgets every
    decision the verifier cached."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.attribute = "_" + name

    @overload
    def __get__(self, obj: None, objtype: type | None = None) -> _Forgetting[_T]: ...
    @overload
    def __get__(self, obj: TokenVerifier, objtype: type | None = None) -> _T: ...
    def __get__(
        self, obj: TokenVerifier | None, objtype: type | None = None
    ) -> _T | _Forgetting[_T]:
        if obj is None:
            return self
        value: _T = getattr(obj, self.attribute)
        return value

    def __set__(self, obj: TokenVerifier, value: _T) -> None:
        setattr(obj, self.attribute, value)
        obj._forget()


class TokenVerifier:
    """Verifies access tokens against a `KeyRing` and the configured claims.

    Tokens that verified are remembered (the `cache_size` most recently used, see
    `authgate.caches`) until they expire, so a client that sends the same token on
    every request pays for its signature once.
    """

    def __init__(
        self,
        ring: KeyRing,
        *,
        issuer: str,
        audience: str,
        leeway: float = 0,
        typ: str = ACCESS_TOKEN_TYPE,
        cache_size: int = VERIFIED_TOKENS.bound,
    ) -> None:
        self._headers: LRU[str, Key] = LRU(TOKEN_HEADERS)
        self._verified: LRU[str, Mapping[str, Any]] = LRU(VERIFIED_TOKENS, cache_size)
        self.cache_size = cache_size
        self._ring = ring
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway
        self._typ = typ

    # What a cached decision depends on: setting any of these forgets every decision, so
    # a token signed by a removed key, or for another issuer, never verifies from memory.
    ring: _Forgetting[KeyRing] = _Forgetting()
    issuer: _Forgetting[str] = _Forgetting()
    audience: _Forgetting[str] = _Forgetting()
    leeway: _Forgetting[float] = _Forgetting()
    typ: _Forgetting[str] = _Forgetting()

    def _forget(self) -> None:
        # New caches, not cleared ones: a verification under the old ring that ends
        # after this puts its answer in the old caches, which nobody reads any more.
        self._headers = LRU(TOKEN_HEADERS)
        self._verified = LRU(VERIFIED_TOKENS, self.cache_size)

    def remembers(self, token: str) -> bool:
        """Did this verifier verify `token` lately (it is in its cache)?"""
        return token in self._verified

    def issue(self, claims: Mapping[str, Any], ttl: int, *, now: float | None = None) -> str:
        """Sign a token carrying `claims` plus ``iss``, ``aud``, ``iat``, ``exp`` and ``jti``."""
        issued = int(now if now is not None else time.time())
        full = {
            "iss": self.issuer,
            "aud": self.audience,
            "iat": issued,
            "exp": issued + ttl,
            "jti": uuid.uuid4().hex,
            **claims,
        }
        return self.ring.sign(full, self.typ)

    def verify(self, token: str, *, now: float | None = None) -> Mapping[str, Any]:
        """The claims of a valid token (read-only: the same mapping serves every request
        that presents the token), or one of the `InvalidToken` family."""
        current = time.time() if now is None else now
        verified = self._verified  # the caches of the ring this verification uses
        cached = verified.get(token)
        if cached is not None:
            self._check_times(cached, current)
            return cached
        claims = self._verify_known_shape(token, current)
        if claims is None:
            claims = self._verify_uncached(token, current)
        verified.put(token, claims)
        return claims

    def _verify_known_shape(self, token: str, now: float) -> Mapping[str, Any] | None:
        """The claims of a token whose header was seen before and whose HMAC signature
        is exactly the one expected, checked without the shape regex or decoding the
        signature; None sends the token down `_verify_uncached`, which decides and
        words every refusal.  Accepts nothing that path refuses: the header string is
        one that path accepted, the signature string is the expected signature's only
        canonical spelling, the payload is decoded canonically, and the claims get the
        same checks."""
        if type(token) is not str or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
            return None
        parts = token.split(".")
        if len(parts) != 3:
            return None
        header_b64, payload_b64, signature_b64 = parts
        if header_b64 not in self._headers:  # first sight: counted once, by `_key_for`
            return None
        key = self._headers.get(header_b64)
        if key is None or not payload_b64:
            return None
        signing_input = token[: len(header_b64) + len(payload_b64) + 1].encode("ascii")
        expected = key.hmac_signature(signing_input)
        if expected is None or not hmac.compare_digest(expected, signature_b64):
            return None
        try:
            raw = _b64decode(payload_b64)
            if raw.count(b"[") + raw.count(b"{") > documents.MAX_DEPTH:
                return None  # perhaps too deep: the full path measures and words it
            claims = _decode_signed_claims(raw)
        except (ValueError, msgspec.DecodeError, RecursionError):
            return None
        self._check_claims(claims, now)
        frozen: Mapping[str, Any] = _frozen(claims)
        return frozen

    def _key_for(self, header_b64: str) -> Key:
        key = self._headers.get(header_b64)
        if key is not None:
            return key
        try:
            header = documents.loads(_b64decode(header_b64))
        except ValueError as err:
            raise MalformedToken("the token header is not valid JSON") from err
        if not isinstance(header, dict):
            raise MalformedToken("the token header is not a JSON object")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms_accepted():
            raise InvalidSignature("the token's algorithm is not accepted")
        if not self._typ_ok(header.get("typ")):
            raise InvalidTokenClaims(f"the token is not of type {self.typ}")
        if "crit" in header:
            raise InvalidTokenClaims("the token has critical header parameters")
        kid = header.get("kid")
        if kid is None:
            candidates = [k for k in self.ring.keys if k.algorithm == alg]
            if len(candidates) != 1:
                raise UnknownKey("the token names no key (kid)")
            key = candidates[0]
        else:
            found = self.ring.by_kid.get(kid) if isinstance(kid, str) else None
            if found is None:
                raise UnknownKey()
            if found.algorithm != alg:
                raise InvalidSignature("the token's algorithm does not match its key")
            key = found
        return key

    def _verify_uncached(self, token: str, now: float) -> Mapping[str, Any]:
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
            raise MalformedToken()
        if not _TOKEN_SHAPE.fullmatch(token):
            raise MalformedToken("the token is not a compact JWT (three base64url segments)")
        header_b64, payload_b64, signature_b64 = token.split(".")
        ring, headers = self._ring, self._headers
        key = self._key_for(header_b64)
        try:
            signature = _b64decode(signature_b64)
        except ValueError as err:
            raise MalformedToken() from err
        signing_input = token[: len(header_b64) + len(payload_b64) + 1].encode("ascii")
        if not key.verify(signing_input, signature):
            raise InvalidSignature()
        # Remembered only once a signature checked (forged headers cannot crowd out the
        # real ones), and only if the ring that gave the key is still the ring.
        if ring is self._ring:
            headers.put(header_b64, key)
        try:
            claims = documents.loads(_b64decode(payload_b64))
        except ValueError as err:
            raise MalformedToken("the token payload is not valid JSON") from err
        if not isinstance(claims, dict):
            raise MalformedToken("the token payload is not a JSON object")
        self._check_claims(claims, now)
        frozen: Mapping[str, Any] = _frozen(claims)
        return frozen

    def _check_times(self, claims: Mapping[str, Any], now: float) -> None:
        if claims["exp"] <= now - self.leeway:
            raise ExpiredToken()
        nbf = claims.get("nbf")
        if nbf is not None and nbf > now + self.leeway:
            raise TokenNotYetValid()

    def _check_claims(self, claims: Mapping[str, Any], now: float) -> None:
        exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf")
        if not _number(exp):
            raise InvalidTokenClaims("the token's exp claim is missing or not a number")
        if not _number(iat):
            raise InvalidTokenClaims("the token's iat claim is missing or not a number")
        if "nbf" in claims and not _number(nbf):
            raise InvalidTokenClaims("the token's nbf claim is not a number")
        self._check_times(claims, now)
        if iat > now + self.leeway:
            raise TokenNotYetValid("the token was issued in the future")
        if claims.get("iss") != self.issuer:
            raise InvalidTokenClaims("the token has the wrong issuer")
        if not self._audience_ok(claims.get("aud")):
            raise InvalidTokenClaims("the token has the wrong audience")
        self._check_shape(claims)

    # What a subclass verifying another issuer's tokens changes (`ExternalVerifier`).

    def _typ_ok(self, typ: object) -> bool:
        return typ == self.typ

    def _algorithms_accepted(self) -> frozenset[str]:
        return self.ring.algorithms

    def _audience_ok(self, aud: object) -> bool:
        return aud == self.audience or (type(aud) is list and self.audience in aud)

    def _check_shape(self, claims: Mapping[str, Any]) -> None:
        """authgate's own claims: who, which token, which session, which version of
        the user, and what the token grants."""
        for name in ("sub", "jti", "sid"):
            value = claims.get(name)
            if type(value) is not str or not value:
                raise InvalidTokenClaims(f"the token's {name} claim is missing or invalid")
        if type(claims.get("ver")) is not int:
            raise InvalidTokenClaims("the token's ver claim is missing or invalid")
        for name in ("roles", "groups", "perms"):
            value = claims.get(name, _NONE)
            if type(value) is not list or not all(type(v) is str for v in value):
                raise InvalidTokenClaims(f"the token's {name} claim is invalid")


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What a login or a refresh returns."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int
    session_id: str
    token_type: str = "bearer"

    def to_dict(self) -> dict[str, Any]:
        """The OAuth 2-style response body."""
        return {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
        }
