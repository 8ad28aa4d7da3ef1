"""The `Gate`: the one object an application configures.

`Gate` (sync: WSGI apps, scripts) and `AsyncGate` (ASGI apps) share everything but the
driver: `_Core` builds the flows, `Gate` runs them with `authgate.flows.run` against a
sync store and `AsyncGate` with `authgate.flows.arun` against an async one, where argon2
runs on a bounded thread pool and never on the event loop.

By default `authenticate` checks the token's session and user in the store on every
call, so logout, password changes, disabling, deleting and role changes apply to the
very next request.  ``stateless=True`` skips that read: the signature and claims alone
decide, and revocation waits for the access token to expire (``access_ttl``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from .api import ApiRequest, ApiResponse, HttpApi
from .apikeys import (
    ApiKey,
    api_key_identity,
    create_api_key,
    is_api_key,
    is_key_identity,
    list_api_keys,
    recheck_api_key,
    require_account_right,
    revoke_api_key,
)
from .audit import AuditLog, bind_audit_log, configure_logging, unbind_audit_log
from .bootstrap import Bootstrap
from .config import Settings
from .flows import Flow, arun, run
from .flows.users import bootstrap as _bootstrap
from .flows.users import create_user as _create_user
from .flows.users import delete_user as _delete_user
from .flows.users import set_password as _set_password
from .flows.users import update_user as _update_user
from .identity import Identity
from .lockout import LockoutPolicy
from .passwords import PasswordHasher
from .permissions import RolePolicy
from .sessions import (
    Client,
    SessionRules,
    TokenPair,
    change_password,
    identity_from_claims,
    load_identity,
    login,
    logout,
    quick_identity,
    refresh,
    revoke_session,
    revoke_sessions,
)
from .stores import AsyncStore, Session, Store, open_async_store, open_store
from .tokens import KeyRing, TokenVerifier
from .users import RoleHierarchy, User, normalize_username

__all__ = ["AsyncGate", "Client", "Gate", "TokenPair"]

_NOWHERE = Client()


class _Core:
    """Configuration and flow construction shared by both faces."""

    def __init__(
        self,
        settings: Settings | None,
        hasher: PasswordHasher | None,
        audit: AuditLog | None,
        ring: KeyRing | None,
        policy: RolePolicy | None,
        overrides: Mapping[str, Any],
    ) -> None:
        base = settings if settings is not None else Settings()
        self.settings = base.replace(**overrides) if overrides else base
        s = self.settings
        self.ring = ring or KeyRing.from_settings(s)
        self.verifier = TokenVerifier(
            self.ring, issuer=s.issuer, audience=s.audience, leeway=s.leeway
        )
        self.hasher = hasher or s.password_hasher()
        configure_logging(s.log_format)
        self.audit = audit or AuditLog()
        if policy is None:  # the configured one: its role order is the deployment's
            self.policy = RolePolicy.from_settings(s)
            self.roles = self.policy.hierarchy
        else:
            self.policy = policy
            self.roles = RoleHierarchy(s.roles)
        self._stateless_identities: dict[str, Identity] = {}
        self._identities: dict[str, tuple[Session | None, User | None, Identity]] = {}
        self.rules = SessionRules(
            verifier=self.verifier,
            hasher=self.hasher,
            lockout=LockoutPolicy(s.max_login_attempts, s.lockout_window, s.lockout_seconds),
            access_ttl=s.access_ttl,
            refresh_ttl=s.refresh_ttl,
            max_sessions=s.max_sessions,
            evict_oldest=s.session_limit_policy == "evict_oldest",
            touch_interval=s.session_touch_interval,
            policy=self.policy,
        )
        self.protected = s.protected_usernames
        self.api = HttpApi(
            self.rules,
            self.roles,
            protected=self.protected,
            scram_secret=self.ring.secret_material(),
            require_if_match=s.require_if_match,
        )

    @property
    def stateless(self) -> bool:
        """True when `authenticate` trusts signature and claims alone."""
        return self.settings.stateless

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """The public keys (JWKS) that verify this gate's tokens."""
        return self.ring.jwks()

    def _quick(self, token: str, store: Any) -> tuple[Mapping[str, Any], Identity | None]:
        """Verify the token and decide without I/O when possible: stateless mode, or a
        store that can answer the session check from memory (`peek_session_user`)."""
        claims = self.verifier.verify(token)
        if self.stateless:
            identity = self._stateless_identities.get(token)
            if identity is None:
                identity = identity_from_claims(self.policy, claims)
                if len(self._stateless_identities) >= 4096:
                    self._stateless_identities.clear()
                self._stateless_identities[token] = identity
            return claims, identity
        peek = getattr(store, "peek_session_user", None)
        if peek is None:
            return claims, None
        found = peek(claims["sid"], claims["sub"])
        if found is None:
            return claims, None
        session, user = found
        known = self._identities.get(token)
        # The stores hand out the same frozen records until something changes, so
        # "same objects" means "same answer" (the last_seen deadline aside).
        if (
            known is not None
            and known[0] is session
            and known[1] is user
            and session is not None
            and time.time() - session.last_seen.timestamp() < self.rules.touch_interval
        ):
            return claims, known[2]
        identity = quick_identity(self.rules, claims, session, user)
        if identity is not None:
            if len(self._identities) >= 4096:
                self._identities.clear()
            self._identities[token] = (session, user, identity)
        return claims, identity

    def _recheck_flow(self, identity: Identity) -> Flow[Identity]:
        if is_key_identity(identity):
            return recheck_api_key(self.rules, identity)
        return load_identity(self.rules, identity.claims)

    def _password_flow(
        self, identity: Identity, current: str, new: str, client: Client
    ) -> Flow[User]:
        require_account_right(identity, "account:password")
        return change_password(
            self.rules, identity.username, current, new, client, identity.session_id or None
        )

    def _create_flow(
        self, username: str, password: str | None, passwordless: bool, fields: dict[str, Any]
    ) -> Flow[User]:
        return _create_user(
            username, password, roles_order=self.roles, passwordless=passwordless, **fields
        )

    def _update_flow(self, username: str, changes: dict[str, Any]) -> Flow[User]:
        version = changes.pop("expected_version", None)
        return _update_user(
            username, self.roles, expected_version=version, protected=self.protected, **changes
        )


class Gate(_Core):
    """The sync face: logins, tokens, sessions and user administration over a `Store`.

    ``store`` is a `Store` or a store URL (default: ``settings.store``); any other
    keyword overrides a `Settings` field: ``Gate(store="memory://", secret_key=...)``.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        store: Store | str | None = None,
        hasher: PasswordHasher | None = None,
        audit: AuditLog | None = None,
        ring: KeyRing | None = None,
        policy: RolePolicy | None = None,
        **overrides: Any,
    ) -> None:
        if isinstance(store, str):
            overrides["store"], store = store, None
        super().__init__(settings, hasher, audit, ring, policy, overrides)
        self.store = store if store is not None else open_store(self.settings.store)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **kwargs: Any) -> Gate:
        """A gate configured from ``AUTHGATE_*`` variables (keywords override them)."""
        return cls(Settings.from_env(environ), **kwargs)

    def __repr__(self) -> str:
        return f"Gate({self.store!r}, stateless={self.stateless})"

    def _run(self, flow: Flow[Any]) -> Any:
        return run(flow, self.store, self.hasher, self.audit.emit)

    def authenticate(self, token: str) -> Identity:
        """The identity a valid access token (or API key) stands for, or an
        `InvalidToken` error."""
        if is_api_key(token):
            key_identity: Identity = self._run(api_key_identity(self.rules, token))
            return key_identity
        claims, identity = self._quick(token, self.store)
        if identity is not None:
            return identity
        result: Identity = self._run(load_identity(self.rules, claims))
        return result

    def handle_api(self, request: ApiRequest, api: HttpApi | None = None) -> ApiResponse | None:
        """Answer an HTTP API request (see `authgate.api`); None when the path is not
        the API's."""
        flow = (api or self.api).handle(request)
        if flow is None:
            return None
        bound = bind_audit_log(self.audit)  # the API's refusals reach the subscribers
        try:
            result: ApiResponse = self._run(flow)
        finally:
            unbind_audit_log(bound)
        return result

    def recheck(self, identity: Identity) -> Identity:
        """Re-read an identity's session and user (for long-lived connections): the
        current identity, or `SessionRevoked`.  Token expiry is not re-checked."""
        if self.stateless or not identity.is_authenticated:
            return identity
        result: Identity = self._run(self._recheck_flow(identity))
        return result

    def login(self, username: str, password: str, client: Client = _NOWHERE) -> TokenPair:
        """Check credentials and open a session; `BadCredentials` or `AccountLocked`."""
        result: TokenPair = self._run(login(self.rules, username, password, client))
        return result

    def refresh(self, refresh_token: str, client: Client = _NOWHERE) -> TokenPair:
        """Spend a refresh token for a new pair."""
        result: TokenPair = self._run(refresh(self.rules, refresh_token, client))
        return result

    def logout(self, identity: Identity, client: Client = _NOWHERE) -> bool:
        """End the identity's session."""
        result: bool = self._run(logout(identity.username, identity.session_id, client))
        return result

    def change_password(
        self, identity: Identity, current: str, new: str, client: Client = _NOWHERE
    ) -> User:
        """Change one's own password; every other session of the user ends."""
        flow = self._password_flow(identity, current, new, client)
        result: User = self._run(flow)
        return result

    def list_sessions(self, username: str) -> list[Session]:
        """A user's live login sessions, oldest first."""
        listed = self.store.list_sessions(normalize_username(username))
        return [s for s in listed if s.kind == "login"]

    def create_api_key(
        self,
        owner: Identity,
        name: str,
        permissions: list[str] | None = None,
        expires_in: int | None = None,
        client: Client = _NOWHERE,
    ) -> tuple[str, ApiKey]:
        """A new API key for `owner`: the raw key (show it once) and its description."""
        result: tuple[str, ApiKey] = self._run(
            create_api_key(owner, name, permissions, expires_in, client)
        )
        return result

    def list_api_keys(self, username: str) -> list[ApiKey]:
        """The user's live API keys (never the keys themselves)."""
        result: list[ApiKey] = self._run(list_api_keys(normalize_username(username)))
        return result

    def revoke_api_key(self, username: str, key_id: str, client: Client = _NOWHERE) -> bool:
        """Revoke one of the user's API keys."""
        result: bool = self._run(revoke_api_key(normalize_username(username), key_id, client))
        return result

    def revoke_session(self, username: str, session_id: str, client: Client = _NOWHERE) -> bool:
        """End one of the user's sessions; False when it is not theirs or gone."""
        result: bool = self._run(revoke_session(normalize_username(username), session_id, client))
        return result

    def revoke_sessions(
        self, username: str, client: Client = _NOWHERE, keep: str | None = None
    ) -> int:
        """End all of a user's sessions (but `keep`)."""
        result: int = self._run(revoke_sessions(normalize_username(username), client, keep))
        return result

    def unlock(self, username: str) -> None:
        """Lift a login lock-out."""
        self._run(self.rules.lockout.unlock(normalize_username(username)))

    def create_user(
        self,
        username: str,
        password: str | None = None,
        *,
        passwordless: bool = False,
        **fields: Any,
    ) -> User:
        """Create a user (password hashed with argon2id).  An account without a password
        (API keys only) needs ``passwordless=True``; a missing password is an error."""
        result: User = self._run(self._create_flow(username, password, passwordless, fields))
        return result

    def update_user(self, username: str, **changes: Any) -> User:
        """Change roles, groups, permissions, enabled or profile fields.  Disabling
        ends the user's sessions; role changes apply on the next request."""
        result: User = self._run(self._update_flow(username, changes))
        return result

    def set_password(self, username: str, password: str) -> User:
        """Set a password as an admin; every session of the user ends."""
        result: User = self._run(_set_password(username, password))
        return result

    def delete_user(self, username: str, *, acting: str | None = None) -> None:
        """Delete a user and their sessions (never the last enabled admin or yourself)."""
        self._run(_delete_user(username, self.roles, acting=acting, protected=self.protected))

    def ensure_superuser(self) -> Bootstrap:
        """Make sure an enabled admin exists (see `authgate.ensure_superuser`)."""
        result: Bootstrap = self._run(_bootstrap(self.settings, self.roles))
        return result

    def close(self) -> None:
        """Release the store's connections."""
        self.store.close()


class AsyncGate(_Core):
    """The async face of `Gate` over an `AsyncStore`; the same behaviour, awaited."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        store: AsyncStore | str | None = None,
        hasher: PasswordHasher | None = None,
        audit: AuditLog | None = None,
        ring: KeyRing | None = None,
        policy: RolePolicy | None = None,
        **overrides: Any,
    ) -> None:
        if isinstance(store, str):
            overrides["store"], store = store, None
        super().__init__(settings, hasher, audit, ring, policy, overrides)
        self.store = store if store is not None else open_async_store(self.settings.store)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **kwargs: Any) -> AsyncGate:
        """A gate configured from ``AUTHGATE_*`` variables (keywords override them)."""
        return cls(Settings.from_env(environ), **kwargs)

    def __repr__(self) -> str:
        return f"AsyncGate({self.store!r}, stateless={self.stateless})"

    async def _run(self, flow: Flow[Any]) -> Any:
        return await arun(flow, self.store, self.hasher, self.audit.emit)

    def authenticate_nowait(self, token: str) -> Identity | None:
        """The identity when it can be decided without I/O (stateless mode, or a cached
        session check), None when `authenticate` must be awaited; `InvalidToken` for a
        bad token.  The ASGI middleware's fast path."""
        if is_api_key(token):
            return None
        return self._quick(token, self.store)[1]

    async def authenticate(self, token: str) -> Identity:
        """The identity a valid access token (or API key) stands for, or an
        `InvalidToken` error."""
        if is_api_key(token):
            key_identity: Identity = await self._run(api_key_identity(self.rules, token))
            return key_identity
        claims, identity = self._quick(token, self.store)
        if identity is not None:
            return identity
        result: Identity = await self._run(load_identity(self.rules, claims))
        return result

    async def handle_api(
        self, request: ApiRequest, api: HttpApi | None = None
    ) -> ApiResponse | None:
        """Answer an HTTP API request (see `authgate.api`); None when the path is not
        the API's."""
        flow = (api or self.api).handle(request)
        if flow is None:
            return None
        bound = bind_audit_log(self.audit)
        try:
            result: ApiResponse = await self._run(flow)
        finally:
            unbind_audit_log(bound)
        return result

    async def recheck(self, identity: Identity) -> Identity:
        """Re-read an identity's session and user (for long-lived connections): the
        current identity, or `SessionRevoked`.  Token expiry is not re-checked."""
        if self.stateless or not identity.is_authenticated:
            return identity
        result: Identity = await self._run(self._recheck_flow(identity))
        return result

    async def login(self, username: str, password: str, client: Client = _NOWHERE) -> TokenPair:
        """Check credentials and open a session; `BadCredentials` or `AccountLocked`."""
        result: TokenPair = await self._run(login(self.rules, username, password, client))
        return result

    async def refresh(self, refresh_token: str, client: Client = _NOWHERE) -> TokenPair:
        """Spend a refresh token for a new pair."""
        result: TokenPair = await self._run(refresh(self.rules, refresh_token, client))
        return result

    async def logout(self, identity: Identity, client: Client = _NOWHERE) -> bool:
        """End the identity's session."""
        result: bool = await self._run(logout(identity.username, identity.session_id, client))
        return result

    async def change_password(
        self, identity: Identity, current: str, new: str, client: Client = _NOWHERE
    ) -> User:
        """Change one's own password; every other session of the user ends."""
        flow = self._password_flow(identity, current, new, client)
        result: User = await self._run(flow)
        return result

    async def list_sessions(self, username: str) -> list[Session]:
        """A user's live login sessions, oldest first."""
        listed = await self.store.list_sessions(normalize_username(username))
        return [s for s in listed if s.kind == "login"]

    async def create_api_key(
        self,
        owner: Identity,
        name: str,
        permissions: list[str] | None = None,
        expires_in: int | None = None,
        client: Client = _NOWHERE,
    ) -> tuple[str, ApiKey]:
        """A new API key for `owner`: the raw key (show it once) and its description."""
        result: tuple[str, ApiKey] = await self._run(
            create_api_key(owner, name, permissions, expires_in, client)
        )
        return result

    async def list_api_keys(self, username: str) -> list[ApiKey]:
        """The user's live API keys (never the keys themselves)."""
        result: list[ApiKey] = await self._run(list_api_keys(normalize_username(username)))
        return result

    async def revoke_api_key(self, username: str, key_id: str, client: Client = _NOWHERE) -> bool:
        """Revoke one of the user's API keys."""
        flow = revoke_api_key(normalize_username(username), key_id, client)
        result: bool = await self._run(flow)
        return result

    async def revoke_session(
        self, username: str, session_id: str, client: Client = _NOWHERE
    ) -> bool:
        """End one of the user's sessions; False when it is not theirs or gone."""
        flow = revoke_session(normalize_username(username), session_id, client)
        result: bool = await self._run(flow)
        return result

    async def revoke_sessions(
        self, username: str, client: Client = _NOWHERE, keep: str | None = None
    ) -> int:
        """End all of a user's sessions (but `keep`)."""
        result: int = await self._run(revoke_sessions(normalize_username(username), client, keep))
        return result

    async def unlock(self, username: str) -> None:
        """Lift a login lock-out."""
        await self._run(self.rules.lockout.unlock(normalize_username(username)))

    async def create_user(
        self,
        username: str,
        password: str | None = None,
        *,
        passwordless: bool = False,
        **fields: Any,
    ) -> User:
        """Create a user (password hashed with argon2id, off the event loop); without a
        password only with ``passwordless=True``."""
        result: User = await self._run(self._create_flow(username, password, passwordless, fields))
        return result

    async def update_user(self, username: str, **changes: Any) -> User:
        """Change roles, groups, permissions, enabled or profile fields."""
        result: User = await self._run(self._update_flow(username, changes))
        return result

    async def set_password(self, username: str, password: str) -> User:
        """Set a password as an admin; every session of the user ends."""
        result: User = await self._run(_set_password(username, password))
        return result

    async def delete_user(self, username: str, *, acting: str | None = None) -> None:
        """Delete a user and their sessions (never the last enabled admin or yourself)."""
        await self._run(_delete_user(username, self.roles, acting=acting, protected=self.protected))

    async def ensure_superuser(self) -> Bootstrap:
        """Make sure an enabled admin exists (see `authgate.ensure_superuser`)."""
        result: Bootstrap = await self._run(_bootstrap(self.settings, self.roles))
        return result

    def ensure_superuser_now(self) -> Bootstrap:
        """`ensure_superuser`, run synchronously: for module import time, before any
        event loop runs (``uvicorn module:app`` imports inside its loop)."""
        shared: Store | None = getattr(self.store, "sync", None)  # memory and SQLite
        store = shared if shared is not None else open_store(self.settings.store)
        try:
            result: Bootstrap = run(
                _bootstrap(self.settings, self.roles), store, self.hasher, self.audit.emit
            )
            return result
        finally:
            if shared is None:
                store.close()

    async def close(self) -> None:
        """Release the store's connections."""
        await self.store.close()
