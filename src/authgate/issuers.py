"""Trusted issuers: access tokens signed by the identity provider a team already runs
(Keycloak, Auth0, Cognito, Entra ID, Ory...), accepted beside authgate's own, without
I/O.

Each `TrustedIssuer` names the provider (its exact ``iss``), where its keys are (a JWKS
URL, or the discovery document that names one), the audiences a token must be for, the
algorithms a token may name (asymmetric only, by default; never taken from the token),
and where its claims put the username, roles, groups and permissions (`ClaimMap`, with
presets for the common providers).  An external identity flows into the same
`Identity`, guards, object hooks and audit events as a local one; its username is
prefixed with the issuer's name (``kc:alice``), so it never stands for a local user of
the same name unless the configuration says so (``username_prefix=""``).

The keys are `IssuerKeys`: what was fetched, when, and what to do next, a state machine
that the gate's background refresher and the request path drive
(`authgate.flows.issuers`); the HTTP fetch itself is theirs.  Tokens are checked by
`ExternalVerifier`: RFC 8725 and RFC 9068's checks, exact ``iss`` and ``aud``, ``exp``,
``nbf`` and ``iat`` with the issuer's leeway, ``typ`` where the provider sets one, and
``jku``, ``x5u`` and embedded ``jwk`` headers ignored (``kid`` is only an index into the
fetched keys).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from . import documents
from .caches import VERIFIED_TOKENS
from .errors import ConfigError, InvalidTokenClaims
from .tokens import ASYMMETRIC_ALGORITHMS, Key, KeyRing, TokenVerifier

__all__ = [
    "ACCESS_TOKEN_TYPES",
    "PRESETS",
    "ClaimMap",
    "ExternalClaims",
    "ExternalVerifier",
    "IssuerKeys",
    "TrustedIssuer",
    "claim_at",
    "jwks_uri_of",
    "keys_from_jwks",
    "normalised_issuers",
    "peek_issuer",
    "read_claims",
]

#: The token types a provider's access token may declare (RFC 9068's, and the plain
#: ``JWT`` most providers still write); a token without ``typ`` is taken too.
ACCESS_TOKEN_TYPES = ("at+jwt", "application/at+jwt", "JWT")


@dataclass(frozen=True, slots=True)
class ClaimMap:
    """Where a provider's token puts who it is for and what they may do: claim paths
    (dotted, ``realm_access.roles``; ``{client}`` stands for the issuer's
    ``client_id``), the first present one giving the username, every one adding roles,
    groups or permissions (a list of strings, or a space-separated string as OAuth
    ``scope`` is)."""

    username: tuple[str, ...] = ("sub",)
    roles: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    permissions: tuple[str, ...] = ()


#: Claim maps for the providers teams run most.  The username is the subject, which
#: the provider never reuses or changes (``preferred_username`` and addresses can
#: change hands: opt in with ``username_claims`` where the provider pins them).
PRESETS: dict[str, ClaimMap] = {
    "generic": ClaimMap(
        username=("sub",),
        roles=("roles",),
        groups=("groups",),
        permissions=("permissions",),
    ),
    # Realm roles, the API client's own roles, and groups (with the groups mapper).
    "keycloak": ClaimMap(
        username=("sub",),
        roles=("realm_access.roles", "resource_access.{client}.roles"),
        groups=("groups",),
    ),
    # RBAC permissions and scopes; roles from a namespaced claim an Action adds.
    "auth0": ClaimMap(
        username=("sub",),
        roles=("{namespace}roles",),
        groups=("{namespace}groups",),
        permissions=("permissions", "scope"),
    ),
    # User pool groups as roles; the access token's scope as permissions.
    "cognito": ClaimMap(
        username=("sub",),
        roles=("cognito:groups",),
        permissions=("scope",),
    ),
    # App roles, and delegated scopes (scp) as permissions.
    "entra": ClaimMap(
        username=("oid", "sub"),
        roles=("roles",),
        groups=("groups",),
        permissions=("scp",),
    ),
}


@dataclass(frozen=True)
class TrustedIssuer:
    """One identity provider whose access tokens are accepted.

    `issuer` is the exact ``iss`` its tokens carry; `audiences` what their ``aud`` must
    name (one of them).  Its keys come from `jwks_uri`, or from the ``jwks_uri`` of its
    discovery document (`discovery_url`, default ``<issuer>/.well-known/openid-
    configuration``).  `name` labels it in usernames (``<name>:<username>``), logs and
    errors.
    """

    issuer: str
    audiences: tuple[str, ...]
    name: str = ""
    jwks_uri: str | None = None
    discovery_url: str | None = None
    algorithms: tuple[str, ...] = ("RS256", "ES256", "PS256", "EdDSA")
    leeway: float = 30
    preset: str = "generic"
    #: Overrides of the preset's claim paths (None keeps the preset's).
    username_claims: tuple[str, ...] | None = None
    role_claims: tuple[str, ...] | None = None
    group_claims: tuple[str, ...] | None = None
    permission_claims: tuple[str, ...] | None = None
    #: Keycloak's API client (for ``resource_access.<client>.roles``).
    client_id: str = ""
    #: Auth0's namespace of custom claims (``https://example.com/``).
    namespace: str = ""
    #: Provider role names to local ones; a role not listed keeps its name.
    role_map: Mapping[str, str] = field(default_factory=dict, hash=False)
    #: None: ``<name>:``.  "" puts external users in the local namespace: a token
    #: naming ``alice`` acts as the local user alice (only for a provider that is the
    #: authority over those names).
    username_prefix: str | None = None
    token_types: tuple[str, ...] = ACCESS_TOKEN_TYPES
    #: Seconds between background refreshes of the keys.
    refresh_interval: float = 300
    #: Seconds the keys last without a successful refresh; then its tokens get 503.
    keys_max_age: float = 86_400
    #: The least seconds between two fetches an unknown ``kid`` triggers.
    refetch_cooldown: float = 30
    #: Logging in through this provider (authorization code + PKCE): the client
    #: authgate is at the provider (none: no login), its secret (none: a public client),
    #: and the scopes asked for.
    login_client_id: str = ""
    login_client_secret: str | None = field(default=None, repr=False)
    login_scopes: tuple[str, ...] = ("openid", "profile", "email")
    #: Make a local user at a first login (just in time), keyed by issuer and subject,
    #: so local roles, groups, grants, API keys and revocation apply to them too.
    provision: bool = True
    #: A first login (or token) of someone unknown here goes to the local user whose
    #: login name is their address, when the provider says it is verified and so
    #: does the local user's record (for deployments where addresses are login names,
    #: ``AUTHGATE_EMAIL_LOGIN``); checked at each login, never stored.
    link_verified_email: bool = False
    #: Its access tokens' users are local users too (made at their first token, with
    #: `provision`): the local user's roles, groups and grants add to the token's, and
    #: disabling or deleting it refuses its tokens (a store read per request).
    local_users: bool = False

    def __post_init__(self) -> None:
        if not self.issuer:
            raise ConfigError("a trusted issuer needs its exact 'issuer' (the iss of its tokens)")
        audiences: object = self.audiences
        if isinstance(audiences, str):  # one audience, from a TOML string or keyword
            object.__setattr__(self, "audiences", (audiences,))
        if not self.audiences or not all(isinstance(a, str) and a for a in self.audiences):
            raise ConfigError(
                f"trusted issuer {self.issuer}: list the 'audiences' its tokens must be for "
                "(this API's identifier at the provider)"
            )
        if not self.name:
            object.__setattr__(self, "name", _default_name(self.issuer))
        for algorithm in self.algorithms:
            if algorithm not in ASYMMETRIC_ALGORITHMS:
                raise ConfigError(
                    f"trusted issuer {self.name}: {algorithm!r} is not an asymmetric "
                    f"algorithm (use {', '.join(ASYMMETRIC_ALGORITHMS)}): a provider's "
                    "tokens are verified with its public keys"
                )
        if self.preset not in PRESETS:
            raise ConfigError(
                f"trusted issuer {self.name}: unknown preset {self.preset!r} "
                f"(one of {', '.join(PRESETS)})"
            )
        for url in (self.issuer, self.jwks_uri, self.discovery_url):
            if url is not None and not url.startswith(("https://", "http://")):
                raise ConfigError(f"trusted issuer {self.name}: {url!r} is not an http(s) URL")
        for name in ("refresh_interval", "keys_max_age", "refetch_cooldown"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"trusted issuer {self.name}: {name} must be positive")
        if self.leeway < 0:
            raise ConfigError(f"trusted issuer {self.name}: leeway must not be negative")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> TrustedIssuer:
        """A trusted issuer from a TOML table, a JSON object or keyword arguments;
        an unknown key is a `ConfigError` naming it."""
        if isinstance(data, TrustedIssuer):
            return data
        known = {f.name for f in fields(cls)} | {"audience"}  # one audience, as a string
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown trusted issuer settings: {', '.join(unknown)}")
        values: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in data.items()
        }
        if "audience" in values:
            if "audiences" in values:
                raise ConfigError("give a trusted issuer 'audiences' or 'audience', not both")
            values["audiences"] = values.pop("audience")
        return cls(**values)

    @property
    def prefix(self) -> str:
        """What external usernames start with."""
        return f"{self.name}:" if self.username_prefix is None else self.username_prefix

    @property
    def claim_map(self) -> ClaimMap:
        """The preset's claim paths, with this issuer's overrides and placeholders."""
        preset = PRESETS[self.preset]
        chosen = ClaimMap(
            username=self.username_claims or preset.username,
            roles=self.role_claims if self.role_claims is not None else preset.roles,
            groups=self.group_claims if self.group_claims is not None else preset.groups,
            permissions=(
                self.permission_claims if self.permission_claims is not None else preset.permissions
            ),
        )
        return ClaimMap(*(self._fill(paths) for paths in _paths(chosen)))

    def _fill(self, paths: tuple[str, ...]) -> tuple[str, ...]:
        filled = []
        for path in paths:
            if "{client}" in path and not self.client_id:
                continue
            if "{namespace}" in path and not self.namespace:
                continue
            filled.append(
                path.replace("{client}", self.client_id).replace("{namespace}", self.namespace)
            )
        return tuple(filled)

    def discovery_location(self) -> str:
        """Where its discovery document is."""
        return self.discovery_url or self.issuer.rstrip("/") + "/.well-known/openid-configuration"


def _paths(claims: ClaimMap) -> tuple[tuple[str, ...], ...]:
    return (claims.username, claims.roles, claims.groups, claims.permissions)


def _default_name(issuer: str) -> str:
    """A short label for an issuer: its host's first label (``login`` of
    ``https://login.example.com/realms/x``)."""
    host = issuer.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    return host.split(".", 1)[0] or "idp"


# -- reading claims -------------------------------------------------------------------------


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path (a key that is itself dotted or a URL, as Auth0's
    namespaced claims are, is found whole first)."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _strings(value: Any) -> list[str]:
    """A claim read as names: a list of strings, or a space-separated string."""
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, str) and v]
    return []


@dataclass(frozen=True, slots=True)
class ExternalClaims:
    """What an external token says of its user, read through the issuer's claim map."""

    username: str
    subject: str
    roles: frozenset[str]
    groups: frozenset[str]
    permissions: frozenset[str]


def read_claims(issuer: TrustedIssuer, claims: Mapping[str, Any]) -> ExternalClaims:
    """The user a verified token of `issuer` stands for; `InvalidTokenClaims` when its
    username claim is missing."""
    chosen = issuer.claim_map
    name = next(
        (
            value
            for path in chosen.username
            if isinstance(value := claim_at(claims, path), str) and value
        ),
        None,
    )
    if name is None or len(name) > 256:
        raise InvalidTokenClaims("the token names no user (its username claim is missing)")
    if not name.isprintable() or any(c.isspace() for c in name):
        raise InvalidTokenClaims("the token's username has spaces or control characters")
    roles = {issuer.role_map.get(r, r) for p in chosen.roles for r in _strings(claim_at(claims, p))}
    groups = {g for p in chosen.groups for g in _strings(claim_at(claims, p))}
    permissions = {g for p in chosen.permissions for g in _strings(claim_at(claims, p))}
    return ExternalClaims(
        username=issuer.prefix + name,
        subject=str(claims.get("sub", name)),
        roles=frozenset(roles),
        groups=frozenset(groups),
        permissions=frozenset(permissions),
    )


# -- peeking at a token ---------------------------------------------------------------------


def peek_issuer(token: str) -> str | None:
    """The ``iss`` a compact JWT claims, unverified (only to choose who verifies it);
    None when it is not readable."""
    parts = token.split(".")
    if len(parts) != 3 or len(token) > 16_384:
        return None
    try:
        raw = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = documents.loads(base64.urlsafe_b64decode(raw))  # bounded nesting
    except ValueError:  # UnicodeDecodeError too
        return None
    issuer = claims.get("iss") if isinstance(claims, dict) else None
    return issuer if isinstance(issuer, str) else None


# -- keys -------------------------------------------------------------------------------------


def keys_from_jwks(document: Any, algorithms: Sequence[str]) -> list[Key]:
    """The verifying keys of a JWKS document usable with `algorithms`: signature keys
    (``use`` absent or ``sig``) with a ``kid``; a key whose ``alg`` is outside the list,
    or that no listed algorithm fits, is left out, and so is a key that does not parse;
    a document that is not a JWKS is a `ValueError`."""
    from jwt import PyJWK
    from jwt.exceptions import PyJWTError

    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document (no 'keys' list)")
    found: list[Key] = []
    seen: set[str] = set()
    for jwk in document["keys"]:
        if not isinstance(jwk, Mapping) or jwk.get("use", "sig") != "sig":
            continue
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid or kid in seen:
            continue
        alg = jwk.get("alg") or _default_alg(jwk)
        if not isinstance(alg, str) or alg not in algorithms:
            continue
        try:
            parsed = PyJWK(dict(jwk), alg)
        except (PyJWTError, ValueError, TypeError, KeyError):
            continue
        seen.add(kid)
        found.append(Key(kid, alg, parsed.key, None, dict(jwk)))
    return found


def _default_alg(jwk: Mapping[str, Any]) -> str | None:
    """The algorithm a JWK without ``alg`` is used with, by its type and curve."""
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if kty == "RSA":
        return "RS256"
    if kty == "EC":
        return {"P-256": "ES256", "P-384": "ES384"}.get(str(crv))
    if kty == "OKP" and crv == "Ed25519":
        return "EdDSA"
    return None


@dataclass
class IssuerKeys:
    """An issuer's fetched keys and what to do next, without I/O: the background
    refresher asks `due`, the request path asks `may_refetch` for an unknown ``kid``,
    and either reports the answer (`fetched`) or the failure (`failed`)."""

    issuer: TrustedIssuer
    ring: KeyRing | None = None
    fetched_at: float = 0.0
    attempted_at: float = float("-inf")  # never: a first fetch is due at once
    failures: int = 0
    last_error: str = ""

    def usable(self, now: float | None = None) -> bool:
        """Are the keys fetched and younger than ``keys_max_age``?"""
        now = time.time() if now is None else now
        return self.ring is not None and now - self.fetched_at < self.issuer.keys_max_age

    def due(self, now: float | None = None) -> bool:
        """Is a background refresh due (every ``refresh_interval``; sooner, with
        backoff, after a failure)?"""
        now = time.time() if now is None else now
        if self.failures:
            backoff = min(self.issuer.refresh_interval, 2.0 ** min(self.failures, 8))
            return now - self.attempted_at >= backoff
        return now - self.attempted_at >= self.issuer.refresh_interval

    def may_refetch(self, now: float | None = None) -> bool:
        """May a request trigger a fetch now: one per ``refetch_cooldown`` (forged
        kids cause no fetch storm, a provider down no stampede)?"""
        now = time.time() if now is None else now
        return now - self.attempted_at >= self.issuer.refetch_cooldown

    def attempt(self, now: float | None = None) -> None:
        """Note a fetch starting (so a second one waits for the cooldown)."""
        self.attempted_at = time.time() if now is None else now

    def fetched(self, document: Any, now: float | None = None) -> bool:
        """Take a fetched JWKS document; True when the keys changed.  A document
        without one usable key counts as a failure (`ValueError`)."""
        now = time.time() if now is None else now
        keys = keys_from_jwks(document, self.issuer.algorithms)
        if not keys:
            raise ValueError(
                f"the JWKS of {self.issuer.name} has no key usable with "
                f"{', '.join(self.issuer.algorithms)}"
            )
        kids = [(k.kid, k.algorithm, _fingerprint(k)) for k in keys]
        old = self.ring
        changed = old is None or kids != [(k.kid, k.algorithm, _fingerprint(k)) for k in old.keys]
        if changed:
            self.ring = KeyRing(keys, verify_only=True)
        self.fetched_at = now
        self.failures = 0
        self.last_error = ""
        return changed

    def failed(self, reason: str, now: float | None = None) -> None:
        """Note a fetch that failed (the cached keys stay until ``keys_max_age``)."""
        self.failures += 1
        self.last_error = reason
        if now is not None:
            self.attempted_at = now

    def retry_after(self, now: float | None = None) -> int:
        """Seconds a client should wait before trying again, in an outage."""
        now = time.time() if now is None else now
        wait = self.issuer.refetch_cooldown - min(now - self.attempted_at, 1e9)
        return max(1, int(wait + 0.999))


def _fingerprint(key: Key) -> str:
    return json.dumps(key.public_jwk, sort_keys=True) if key.public_jwk else key.kid


def jwks_uri_of(discovery: Any, issuer: TrustedIssuer) -> str:
    """The ``jwks_uri`` a discovery document names, once its ``issuer`` is checked to be
    exactly the configured one (OpenID Connect Discovery, 4.3)."""
    if not isinstance(discovery, Mapping):
        raise ValueError("the discovery document is not a JSON object")
    if discovery.get("issuer") != issuer.issuer:
        raise ValueError(
            f"the discovery document names issuer {discovery.get('issuer')!r}, "
            f"not {issuer.issuer!r}"
        )
    uri = discovery.get("jwks_uri")
    if not isinstance(uri, str) or not uri.startswith(("https://", "http://")):
        raise ValueError("the discovery document names no jwks_uri")
    if issuer.issuer.startswith("https://") and not uri.startswith("https://"):
        raise ValueError("the discovery document names a jwks_uri over plain http")
    return uri


# -- verifying ----------------------------------------------------------------------------------


class ExternalVerifier(TokenVerifier):
    """Verifies an issuer's access tokens with its fetched keys: its exact issuer, one of
    its audiences, the times with its leeway, a ``typ`` it may declare, and a ``sub``
    (authgate's own ``sid`` and ``ver`` claims are not asked for)."""

    def __init__(
        self, issuer: TrustedIssuer, ring: KeyRing, *, cache_size: int = VERIFIED_TOKENS.bound
    ) -> None:
        super().__init__(
            ring,
            issuer=issuer.issuer,
            audience=issuer.audiences[0],
            leeway=issuer.leeway,
            typ=issuer.token_types[0] if issuer.token_types else "",
            cache_size=cache_size,
        )
        self.trusted = issuer

    def _typ_ok(self, typ: object) -> bool:
        return typ is None or (isinstance(typ, str) and typ in self.trusted.token_types)

    def _algorithms_accepted(self) -> frozenset[str]:
        # The issuer's list, not only the fetched keys': a key of another listed
        # algorithm is a rotation to fetch (`UnknownKey`), not a forgery.
        return frozenset(self.trusted.algorithms)

    def _audience_ok(self, aud: object) -> bool:
        audiences = self.trusted.audiences
        if isinstance(aud, str):
            return aud in audiences
        return type(aud) is list and any(a in audiences for a in aud if isinstance(a, str))

    def _check_shape(self, claims: Mapping[str, Any]) -> None:
        sub = claims.get("sub")
        if type(sub) is not str or not sub:
            raise InvalidTokenClaims("the token's sub claim is missing or invalid")


def normalised_issuers(values: Iterable[Any]) -> tuple[TrustedIssuer, ...]:
    """Trusted issuers from settings (objects, mappings, or one JSON array's text);
    two with the same ``iss`` or name are a `ConfigError`."""
    if isinstance(values, str):
        try:
            values = json.loads(values)
        except ValueError as err:
            raise ConfigError("AUTHGATE_TRUSTED_ISSUERS must be a JSON array of objects") from err
        if not isinstance(values, list):
            raise ConfigError("AUTHGATE_TRUSTED_ISSUERS must be a JSON array of objects")
    issuers = tuple(TrustedIssuer.from_mapping(v) if isinstance(v, Mapping) else v for v in values)
    for issuer in issuers:
        if not isinstance(issuer, TrustedIssuer):
            raise ConfigError("a trusted issuer is a TrustedIssuer or a table of its settings")
    for attribute in ("issuer", "name"):
        names = [getattr(i, attribute) for i in issuers]
        if len(set(names)) != len(names):
            raise ConfigError(f"two trusted issuers have the same {attribute}")
    return issuers
