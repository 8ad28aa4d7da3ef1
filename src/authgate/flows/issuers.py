"""Trusted issuers, as flows: an external access token's identity, and the fetch of an
issuer's keys that the request path makes for an unknown ``kid`` (at most one per
cooldown) and the gate's background refresher makes on a schedule.

The keys are fetched when the gate starts and refreshed in the background
(`KeyRefresher`), so the request path does no network I/O, except for one fetch when a
token names a key not seen yet (a rotation at the provider) and the cooldown allows it.
When the provider cannot be reached the cached keys serve until they are
``keys_max_age`` old; then its tokens are answered 503 with ``Retry-After``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import threading
import time
import weakref
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..audit import AuditEvent
from ..errors import (
    BadCredentials,
    InvalidToken,
    PermissionDenied,
    ProviderUnavailable,
    SessionRevoked,
    StoreError,
    UnknownKey,
    UserExists,
)
from ..identity import Client, Identity
from ..issuers import (
    ExternalClaims,
    ExternalVerifier,
    IssuerKeys,
    TrustedIssuer,
    jwks_uri_of,
    peek_issuer,
    read_claims,
)
from ..permissions import RolePolicy
from ..stores.base import Store
from ..tokens import KeyRing
from ..users import User, normalize_username
from .drive import FetchFailed, run_fetches
from .ops import Emit, Fetch, Flow, call

_NAME = re.compile(r"[^\w.@+-]+")

__all__ = [
    "IssuerState",
    "Issuers",
    "KeyRefresher",
    "external_identity",
    "external_user_id",
    "identity_of",
    "local_user",
    "recheck_external",
    "refresh_keys",
]

_log = logging.getLogger("authgate.issuers")


@dataclass
class IssuerState:
    """One trusted issuer as a gate holds it: its settings, keys and verifier."""

    issuer: TrustedIssuer
    keys: IssuerKeys = field(init=False)
    verifier: ExternalVerifier | None = None
    #: The ID tokens' verifier of logins through it (its client as the audience).
    id_verifier: ExternalVerifier | None = None
    jwks_uri: str | None = None
    #: Its discovery document, once read (what logins through it need).
    metadata: dict[str, Any] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.keys = IssuerKeys(self.issuer)
        self.jwks_uri = self.issuer.jwks_uri

    def took(self, ring: KeyRing) -> None:
        """Use a new ring of keys (a verifier's cache is forgotten with it)."""
        if self.verifier is None:
            self.verifier = ExternalVerifier(self.issuer, ring)
        else:
            self.verifier.ring = ring


class Issuers:
    """A gate's trusted issuers, by their exact ``iss``."""

    def __init__(self, issuers: tuple[TrustedIssuer, ...], own_issuer: str) -> None:
        self.by_iss: dict[str, IssuerState] = {i.issuer: IssuerState(i) for i in issuers}
        self.own_issuer = own_issuer

    def __bool__(self) -> bool:
        return bool(self.by_iss)

    def __iter__(self) -> Any:
        return iter(self.by_iss.values())

    def for_token(self, token: str) -> IssuerState | None:
        """The trusted issuer a token claims to come from (unverified: only who checks
        it); None for authgate's own tokens and for what is no JWT.  A token claiming
        an issuer nobody trusts is refused here (`InvalidToken`)."""
        iss = peek_issuer(token)
        if iss is None or iss == self.own_issuer:
            return None
        state = self.by_iss.get(iss)
        if state is None:
            raise InvalidToken("the token's issuer is not trusted")
        return state


def refresh_keys(state: IssuerState, now: float | None = None) -> Flow[bool]:
    """Fetch the issuer's keys (its discovery document first, when no JWKS URL is
    configured); True when they changed.  A failure is noted and logged (the cached
    keys stay): False."""
    keys, issuer = state.keys, state.issuer
    keys.attempt(now)
    try:
        if state.jwks_uri is None or (issuer.login_client_id and state.metadata is None):
            discovery = yield Fetch(issuer.discovery_location())
            uri = jwks_uri_of(discovery, issuer)
            state.jwks_uri = state.jwks_uri or uri
            state.metadata = dict(discovery)
        document = yield Fetch(state.jwks_uri)
        changed = keys.fetched(document, now)
    except Exception as err:
        if not isinstance(err, FetchFailed | ValueError):
            err = FetchFailed(f"{type(err).__name__}")
        keys.failed(str(err), now)
        _log.warning(
            "the keys of trusted issuer %s could not be fetched: %s (failure %d; cached keys %s)",
            issuer.name,
            err,
            keys.failures,
            "in use" if keys.usable(now) else "none or expired",
        )
        return False
    if changed and keys.ring is not None:
        state.took(keys.ring)
        _log.info(
            "trusted issuer %s: keys %s", issuer.name, ", ".join(k.kid for k in keys.ring.keys)
        )
    return changed


def external_identity(
    state: IssuerState,
    policy: RolePolicy,
    token: str,
    now: float | None = None,
    known_roles: Collection[str] = (),
) -> Flow[Identity]:
    """The identity an access token of a trusted issuer stands for: verified with the
    issuer's keys (fetched once more when it names a key not seen yet, and the cooldown
    allows), its claims mapped to a username, roles, groups and permissions."""
    keys = state.keys
    if not keys.usable(now) and keys.may_refetch(now):
        yield from refresh_keys(state, now)
    if not keys.usable(now) or state.verifier is None:
        raise ProviderUnavailable(
            f"the keys of trusted issuer {state.issuer.name} are unavailable: "
            f"{keys.last_error or 'not fetched yet'}",
            retry_after=keys.retry_after(now),
        )
    try:
        claims = state.verifier.verify(token)
    except UnknownKey:
        if not keys.may_refetch(now):
            raise
        changed = yield from refresh_keys(state, now)
        if not changed:
            raise
        claims = state.verifier.verify(token)
    if not state.issuer.local_users:
        return identity_of(state.issuer, policy, claims)
    found = read_claims(state.issuer, claims)
    user = yield from local_user(state.issuer, known_roles, found, claims, Client())
    return with_local_user(state.issuer, policy, claims, found, user)


def _linked_by_email(issuer: TrustedIssuer, email: str) -> Flow[User | None]:
    """The local user whose login name is `email`, when both sides say the address is
    verified (the provider's ``email_verified``, the user's own): linked at each login,
    never by an address either side has not confirmed."""
    try:
        name = normalize_username(email)
    except ValueError:
        return None
    user = yield from call(Store.get_user, name)
    if (
        user is None
        or not user.email_verified
        or user.email.casefold() != email.casefold()
        or user.id.startswith("ext-")
    ):
        return None
    _log.info(
        "trusted issuer %s: a login linked to a local user by a verified address", issuer.name
    )
    return user


def recheck_external(state: IssuerState, identity: Identity) -> Flow[Identity]:
    """Re-check the identity of an external token (a long-lived connection's): its
    token not expired, its issuer's keys still usable, and a local user, if it has
    one, still there and enabled.  Never read as authgate's own claims."""
    claims = identity.claims
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or exp <= time.time() - state.issuer.leeway:
        raise SessionRevoked("the token has expired")
    if not state.keys.usable():
        raise ProviderUnavailable(
            f"the keys of trusted issuer {state.issuer.name} are unavailable",
            retry_after=state.keys.retry_after(),
        )
    if state.issuer.local_users:
        user = yield from call(Store.get_user_by_id, identity.user_id)
        if user is None or not user.enabled:
            raise SessionRevoked()
    return identity


def with_local_user(
    issuer: TrustedIssuer,
    policy: RolePolicy,
    claims: Mapping[str, Any],
    found: ExternalClaims,
    user: User,
) -> Identity:
    """The identity of an external token whose user is also a local user: the local
    name and id, and the roles, groups and grants of both."""
    roles, groups = found.roles | user.roles, found.groups | user.groups
    grants = policy.permissions_for(roles, groups, found.permissions | user.permissions)
    return Identity(
        username=user.username,
        user_id=user.id,
        roles=roles,
        groups=groups,
        permissions=grants.grants,
        session_id="",
        claims=claims,
        is_authenticated=True,
        email=user.email,
        full_name=user.display_name or user.full_name,
        user_version=user.version,
        grants=grants,
    )


def identity_of(issuer: TrustedIssuer, policy: RolePolicy, claims: Mapping[str, Any]) -> Identity:
    """The `Identity` of a verified external token."""
    found = read_claims(issuer, claims)
    grants = policy.permissions_for(found.roles, found.groups, found.permissions)
    return Identity(
        username=found.username,
        user_id=f"{issuer.name}|{found.subject}",
        roles=found.roles,
        groups=found.groups,
        permissions=grants.grants,
        session_id="",
        claims=claims,
        is_authenticated=True,
        email=str(claims.get("email", "")) if claims.get("email_verified") is True else "",
        full_name=str(claims.get("name") or claims.get("preferred_username") or "")[:128],
        grants=grants,
    )


def external_user_id(issuer: str, subject: str) -> str:
    """The id of the local user of a provider's subject: derived from both, so it is
    nobody else's (ids of local users are random, and no one chooses one)."""
    digest = hashlib.sha256(f"authgate-external\x00{issuer}\x00{subject}".encode()).hexdigest()
    return f"ext-{digest[:40]}"


def local_user(
    issuer: TrustedIssuer,
    known_roles: Collection[str],
    found: ExternalClaims,
    claims: Mapping[str, Any],
    client: Client,
) -> Flow[User]:
    """The local user of the provider's subject; made at its first login (or token)
    when the issuer provisions: the roles it names that this deployment has
    (`known_roles`), its verified address, a free username close to the one it
    names, no password.  A disabled one is `BadCredentials`."""
    user_id = external_user_id(issuer.issuer, found.subject)
    user = yield from call(Store.get_user_by_id, user_id)
    email = claims.get("email") if claims.get("email_verified") is True else ""
    if user is None and issuer.link_verified_email and isinstance(email, str) and email:
        user = yield from _linked_by_email(issuer, email)
    if user is not None:
        if not user.enabled:
            raise BadCredentials()
        return user
    if not issuer.provision:
        raise PermissionDenied(f"no local account is linked to this {issuer.name} account")
    roles = {r for r in found.roles if r in known_roles}
    named = claims.get("preferred_username") or str(email or "").split("@")[0]
    if not isinstance(named, str) or not named:
        named = found.username.removeprefix(issuer.prefix)
    base = _NAME.sub("", named)[:48].strip(".") or "user"
    for attempt in range(4):
        name = base if attempt == 0 else f"{base}-{user_id[4 + attempt * 6 : 10 + attempt * 6]}"
        try:
            made = User.new(
                name,
                roles=roles,
                email=str(email or "")[:320],
                email_verified=bool(email),
                display_name=str(claims.get("name", ""))[:128],
            )
        except ValueError:
            made = User.new(f"user-{user_id[4:16]}")
        made = dataclasses.replace(made, id=user_id)
        try:
            saved = yield from call(Store.create_user, made)
        except StoreError as err:
            if err.status == 503:
                raise
            # Another worker made this user a moment ago (the same id), or the name
            # is someone else's: the user if it is there now, else the next name.
            raced = yield from call(Store.get_user_by_id, user_id)
            if raced is not None:
                return raced
            if isinstance(err, UserExists):
                continue
            raise
        yield Emit(
            AuditEvent(
                "user_created",
                saved.username,
                client_ip=client.ip,
                detail=f"provisioned at a first login through {issuer.name}",
            )
        )
        return saved
    raise PermissionDenied("no free username for this account: ask an admin")


class KeyRefresher:
    """A daemon thread that keeps every trusted issuer's keys fresh: it fetches them at
    once, then whenever `IssuerKeys.due` says so.  One per gate and process (a forked
    worker starts its own on first use); `stop` ends it."""

    def __init__(self, issuers: Issuers, tick: float = 1.0) -> None:
        self.issuers = issuers
        self.tick = tick
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def ensure_running(self) -> None:
        """Start the thread in this process, unless it runs already."""
        import os

        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        self._stop.clear()
        self._pid = os.getpid()
        # The thread holds the refresher weakly: a gate dropped without `close` takes
        # its refresher with it, and the thread ends at its next tick.
        self._thread = threading.Thread(
            target=KeyRefresher._run,
            args=(weakref.ref(self), self._stop, self.tick),
            name="authgate-issuer-keys",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """End the thread (at its next tick)."""
        self._stop.set()

    def refresh_now(self) -> None:
        """Refresh every issuer whose refresh is due, in this thread."""
        for state in self.issuers:
            if state.keys.due():
                with state.lock:
                    run_fetches(refresh_keys(state))

    @staticmethod
    def _run(
        owner: weakref.ReferenceType[KeyRefresher], stop: threading.Event, tick: float
    ) -> None:
        while not stop.is_set():
            refresher = owner()
            if refresher is None:
                return
            try:
                refresher.refresh_now()
            except Exception:  # pragma: no cover - a refresher never dies of one failure
                _log.exception("the trusted issuers' key refresher failed")
            del refresher
            stop.wait(tick)
