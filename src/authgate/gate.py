"""The `Gate`: the one object an application configures.

Every operation is defined once, in `_Gate`, as the flow it runs (`authgate.faces`):
`Gate` (sync: WSGI apps, scripts) drives it with `authgate.flows.run` against a sync
store and returns the result; `AsyncGate` (ASGI apps) with `authgate.flows.arun`
against an async one, awaited, where argon2 runs on a bounded thread pool and never on
the event loop.  Neither face has an operation body of its own.

By default `authenticate` checks the token's session and user in the store on every
call, so logout, password changes, disabling, deleting and role changes apply to the
very next request.  ``stateless=True`` skips that read: the signature and claims alone
decide, and revocation waits for the access token to expire (``access_ttl``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any, Generic, TypeVar

from .audit import AuditLog, configure_logging
from .bootstrap import Bootstrap
from .browser import BrowserRules, is_session_cookie
from .caches import EXTERNAL_IDENTITIES, IDENTITIES, LRU
from .config import Settings
from .context import note_refusal
from .decorators import check_fresh
from .errors import AuthGateError, ConfigError
from .faces import AsyncFace, Steps, SyncFace, operation, returning
from .factors import Passkey, SecretBox
from .flows import Flow, arun, call, run
from .flows.accounts import (
    RESET,
    VERIFY,
    AccountRules,
    AccountTokens,
    SignUp,
    request_password_reset,
    request_verification,
    reset_password,
    sign_up,
    signup_role,
    verify_email,
)
from .flows.apikeys import (
    ApiKey,
    api_key_identity,
    create_api_key,
    is_api_key,
    is_key_identity,
    key_listing,
    list_api_keys,
    recheck_api_key,
    require_account_right,
    revoke_api_key,
)
from .flows.browser import (
    BrowserSession,
    browser_identity,
    browser_login,
    open_for,
)
from .flows.identity import (
    explain_decision,
    identity_from_claims,
    load_identity,
    quick_identity,
)
from .flows.issuers import (
    Issuers,
    IssuerState,
    KeyRefresher,
    external_identity,
    recheck_external,
)
from .flows.lockout import LockoutPolicy
from .flows.login import change_password, login
from .flows.mfa import (
    MfaRules,
    TotpEnrolment,
    begin_totp,
    complete_login,
    confirm_totp,
    regenerate_recovery,
    reset_factors,
)
from .flows.objects import visible_objects
from .flows.passkeys import (
    begin_registration,
    finish_registration,
    passkey_list,
    passkey_login,
    remove_passkey,
)
from .flows.sessions import (
    SessionRules,
    logout,
    refresh,
    revoke_session,
    revoke_sessions,
)
from .flows.stepup import reauth_options, reauthenticate
from .flows.stepup import signed_in as signed_in_user
from .flows.throttle import ClientThrottle
from .flows.users import bootstrap as _bootstrap
from .flows.users import create_user as _create_user
from .flows.users import delete_group as _delete_group
from .flows.users import delete_user as _delete_user
from .flows.users import save_group as _save_group
from .flows.users import set_password as _set_password
from .flows.users import update_user as _update_user
from .identity import Client, Identity
from .mail import MailTemplates, Outbox, open_mailer
from .passkeys import LOGIN as PASSKEY_LOGIN
from .passkeys import PasskeyRules
from .passwords import PasswordHasher
from .permissions import Policy, RolePolicy
from .permissions.explain import Explanation
from .stores import AsyncStore, Session, Store, open_async_store, open_store
from .tokens import KeyRing, TokenPair, TokenVerifier
from .users import Group, RoleHierarchy, User, normalize_username

__all__ = ["AsyncGate", "Client", "Gate", "TokenPair"]


def _passkey_rules(settings: Settings, ring: KeyRing) -> PasskeyRules | None:
    """The relying party the settings describe, when passkeys are on."""
    rp_id = settings.passkey_rp_id
    if rp_id is None:
        return None
    return PasskeyRules(
        rp_id=rp_id,
        rp_name=settings.passkey_rp_name or settings.issuer,
        origins=settings.passkey_origins or (f"https://{rp_id}",),
        ceremonies=TokenVerifier(
            ring,
            issuer=settings.issuer,
            audience=f"{settings.audience}#passkey",
            typ="authgate-passkey+jwt",
            cache_size=64,
        ),
        ttl=settings.mfa_challenge_ttl,
    )


def _outbox(settings: Settings) -> Outbox | None:
    """The outbox the settings describe; mail needs the site's public address, for
    the links it carries."""
    if settings.mail_url is None:
        if settings.require_verified_email:
            raise ConfigError(
                "require_verified_email needs mail: set AUTHGATE_MAIL_URL (smtp://... , "
                "or console:// while developing) and AUTHGATE_PUBLIC_URL"
            )
        return None
    if not settings.public_url:
        raise ConfigError(
            "AUTHGATE_MAIL_URL is set but AUTHGATE_PUBLIC_URL is not: mailed links start "
            "with the site's public address (https://app.example.com), never a request's Host"
        )
    return Outbox(open_mailer(settings.mail_url, settings.mail_from))


_NOWHERE = Client()
S = TypeVar("S", Store, AsyncStore)
T = TypeVar("T")
G = TypeVar("G", bound="_Gate[Any]")


class _Gate(Generic[S]):
    """Every operation of the gate, defined once; `Gate` and `AsyncGate` drive them."""

    store: S

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        store: S | str | None = None,
        hasher: PasswordHasher | None = None,
        audit: AuditLog | None = None,
        ring: KeyRing | None = None,
        policy: RolePolicy | None = None,
        outbox: Outbox | None = None,
        **overrides: Any,
    ) -> None:
        if isinstance(store, str):
            overrides["store"], store = store, None
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
            # A policy of its own roles (a graph, a chain of other names) brings them.
            custom = policy.hierarchy != RoleHierarchy()
            self.roles = policy.hierarchy if custom else RoleHierarchy(s.roles)
        # token -> (session, user, identity, when its last_seen touch is due);
        # stateless: (None, None, identity, 0.0).
        self._identities: LRU[str, tuple[Session | None, User | None, Identity, float]] = LRU(
            IDENTITIES
        )
        # Identity providers whose access tokens are accepted too, their keys kept fresh
        # by a background thread (started now, and in each forked worker on first use).
        self.issuers = Issuers(s.trusted_issuers, s.issuer)
        # An external token -> its issuer and identity (re-checked by the issuer's
        # verifier on each use: its expiry, and a rotation that forgot the key).
        self._external_identities: LRU[str, tuple[IssuerState, Identity]] = LRU(EXTERNAL_IDENTITIES)
        self._trusts_issuers = bool(self.issuers)
        self._refresher = KeyRefresher(self.issuers) if self._trusts_issuers else None
        if self._refresher is not None:
            self._refresher.refresh_now()  # the keys at start: requests find them there
        #: Signs the state a login through a provider keeps in the browser meanwhile.
        self.login_states = TokenVerifier(
            self.ring,
            issuer=s.issuer,
            audience=f"{s.audience}#oidc",
            typ="authgate-oidc+jwt",
            cache_size=64,
        )
        if self._refresher is not None:
            self._refresher.ensure_running()
        self.rules = SessionRules(
            verifier=self.verifier,
            hasher=self.hasher,
            lockout=LockoutPolicy(s.max_login_attempts, s.lockout_window, s.lockout_seconds),
            throttle=ClientThrottle(
                s.max_failures_per_address, s.max_failures_per_address_user, s.address_window
            ),
            access_ttl=s.access_ttl,
            refresh_ttl=s.refresh_ttl,
            max_sessions=s.max_sessions,
            evict_oldest=s.session_limit_policy == "evict_oldest",
            touch_interval=s.session_touch_interval,
            policy=self.policy,
            require_verified_email=s.require_verified_email,
            mfa_roles=frozenset(self.roles.known(s.mfa_roles)),
        )
        self.mfa = MfaRules(
            box=SecretBox(self.ring.secret_materials() or [self.ring.secret_material()]),
            challenges=TokenVerifier(
                self.ring,
                issuer=s.issuer,
                audience=f"{s.audience}#mfa",
                typ="authgate-mfa+jwt",
                cache_size=64,
            ),
            challenge_ttl=s.mfa_challenge_ttl,
            issuer=s.issuer,
            passkeys=_passkey_rules(s, self.ring),
            step_up_ttl=s.step_up_ttl,
        )
        self.browser = BrowserRules.from_settings(s, self.ring.secret_material())
        self.outbox = outbox if outbox is not None else _outbox(s)
        self.accounts = AccountRules(
            sessions=self.rules,
            tokens=AccountTokens(self.verifier, {RESET: s.reset_ttl, VERIFY: s.verify_ttl}),
            roles=self.roles,
            outbox=self.outbox,
            templates=MailTemplates(directory=s.mail_templates),
            public_url=s.public_url or "",
            reset_url=s.reset_url,
            verify_url=s.verify_url,
            site=s.issuer,
            max_per_address=s.max_mail_requests_per_address,
            max_per_account=s.max_mail_requests_per_account,
            window=s.mail_window,
            signup=s.signup,
            signup_role=signup_role(self.roles, s.signup_role) if s.signup else s.signup_role,
            require_verified_email=s.require_verified_email,
            email_login=s.email_login,
        )
        self.protected = s.protected_usernames
        self.store = store if store is not None else self._open(self.settings.store)

    @staticmethod
    def _open(url: str) -> S:
        raise NotImplementedError

    @classmethod
    def from_env(cls: type[G], environ: Mapping[str, str] | None = None, **kwargs: Any) -> G:
        """A gate configured from ``AUTHGATE_*`` variables (keywords override them)."""
        return cls(Settings.from_env(environ), **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.store!r}, stateless={self.stateless})"

    @property
    def stateless(self) -> bool:
        """True when `authenticate` trusts signature and claims alone."""
        return self.settings.stateless

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """The public keys (JWKS) that verify this gate's tokens."""
        return self.ring.jwks()

    def _quick(self, token: str) -> tuple[Mapping[str, Any], Identity | None]:
        """Verify the token and decide without I/O when possible: stateless mode, or a
        store that can answer the session check from memory (`peek_session_user`)."""
        claims = self.verifier.verify(token)
        if self.stateless:
            remembered = self._identities.get(token)
            if remembered is not None:
                return claims, remembered[2]
            built = identity_from_claims(self.policy, claims)
            self._identities.put(token, (None, None, built, 0.0))
            return claims, built
        peek = getattr(self.store, "peek_session_user", None)
        if peek is None:
            return claims, None
        found = peek(claims["sid"], claims["sub"])
        if found is None:
            return claims, None
        session, user = found
        known = self._identities.get(token)
        # The stores hand out the same frozen records until something changes, so
        # "same objects" means "same answer" (the last_seen deadline aside: the same
        # session's, kept with the answer).
        if (
            known is not None
            and known[0] is session
            and known[1] is user
            and session is not None
            and time.time() < known[3]
        ):
            return claims, known[2]
        identity = quick_identity(self.rules, claims, session, user)
        if identity is not None and session is not None:
            due = session.last_seen.timestamp() + self.rules.touch_interval
            self._identities.put(token, (session, user, identity, due))
        return claims, identity

    @operation
    def authenticate(self, token: str) -> Flow[Identity]:
        """The identity a valid access token (or API key) stands for, or an
        `InvalidToken` error."""
        return self._authentication(token)

    def _authentication(self, token: str) -> Flow[Identity]:
        if is_api_key(token):
            return api_key_identity(self.rules, token)
        if is_session_cookie(token):
            return browser_identity(self.rules, token)
        if self._trusts_issuers:  # decided once: no cost per request without issuers
            external = self._external(token)
            if external is not None:
                return external
        claims, identity = self._quick(token)
        if identity is not None:
            return returning(identity)
        return load_identity(self.rules, claims)

    def _external(self, token: str) -> Flow[Identity] | None:
        """The flow of a trusted issuer's token (None for authgate's own: a token this
        gate verified lately is not looked at twice)."""
        if self.verifier.remembers(token):
            return None
        known = self._external_identities.get(token)
        if known is not None and known[0].keys.usable():
            verifier = known[0].verifier
            if verifier is not None and verifier.remembers(token):
                verifier.verify(token)  # from its cache: the times checked again
                return returning(known[1])
        state = self.issuers.for_token(token)
        if state is None:
            return None
        assert self._refresher is not None
        self._refresher.ensure_running()  # a forked worker's own refresher
        return self._remembered(state, token)

    def _remembered(self, state: IssuerState, token: str) -> Flow[Identity]:
        identity = yield from external_identity(
            state, self.policy, token, known_roles=self.roles.order
        )
        if not state.issuer.local_users:  # a local user is read each time: revocable
            self._external_identities.put(token, (state, identity))
        return identity

    @operation
    def recheck(self, identity: Identity) -> Flow[Identity]:
        """Re-read an identity's session and user (for long-lived connections): the
        current identity, or `SessionRevoked`.  Token expiry is not re-checked."""
        if self.stateless or not identity.is_authenticated:
            return returning(identity)
        if is_key_identity(identity):
            return recheck_api_key(self.rules, identity)
        external = self.issuers.by_iss.get(str(identity.claims.get("iss", "")))
        if external is not None and identity.claims.get("iss") != self.settings.issuer:
            return recheck_external(external, identity)
        return load_identity(self.rules, identity.claims)

    @operation
    def login(self, username: str, password: str, client: Client = _NOWHERE) -> Flow[TokenPair]:
        """Check credentials and open a session; `BadCredentials` or `AccountLocked`,
        and for a user with a second factor `SecondFactorRequired`, whose challenge
        `complete_login` takes with a code."""
        return login(self.rules, username, password, client, self.mfa)

    @operation
    def complete_login(
        self,
        challenge: str,
        code: str | None = None,
        client: Client = _NOWHERE,
        *,
        passkey: Mapping[str, Any] | str | None = None,
    ) -> Flow[TokenPair | BrowserSession]:
        """The second step of a login: the challenge of `SecondFactorRequired` and a
        TOTP or recovery code, or a passkey's answer (``PublicKeyCredential.toJSON()``)
        to the options it carried; opens the session the login was for (a token pair,
        or a browser session).  A wrong code or passkey is `BadCredentials` and counts
        toward the lock-out."""
        return self._second_step(challenge, code, client, passkey)

    def _second_step(
        self, challenge: str, code: str | None, client: Client, passkey: object
    ) -> Flow[TokenPair | BrowserSession]:
        user, via = yield from complete_login(
            self.mfa, self.rules, challenge, code, client, passkey
        )
        return (
            yield from open_for(
                self.rules, self.browser, user, via, client, via["amr"], "second factor"
            )
        )

    @operation
    def begin_totp(self, identity: Identity, client: Client = _NOWHERE) -> Flow[TotpEnrolment]:
        """Start enrolling a TOTP authenticator for `identity`: its secret, URI and QR
        code (show them once); `confirm_totp` activates it."""
        require_account_right(identity, "account:mfa")
        check_fresh(self.mfa.step_up_ttl, identity)
        return begin_totp(self.mfa, identity.username, client)

    @operation
    def confirm_totp(
        self, identity: Identity, code: str, client: Client = _NOWHERE
    ) -> Flow[list[str]]:
        """Activate the enrolment with a first code: the new recovery codes (show them
        once)."""
        require_account_right(identity, "account:mfa")
        return self._confirmed(identity.username, code, client)

    def _confirmed(self, username: str, code: str, client: Client) -> Flow[list[str]]:
        _, codes = yield from confirm_totp(self.mfa, self.rules, username, code, client)
        return codes

    @operation
    def regenerate_recovery_codes(
        self, identity: Identity, code: str, client: Client = _NOWHERE
    ) -> Flow[list[str]]:
        """A new set of recovery codes for a current TOTP code (the old set is void)."""
        require_account_right(identity, "account:mfa")
        return regenerate_recovery(self.mfa, self.rules, identity.username, code, client)

    @operation
    def reset_mfa(self, username: str, *, actor: str = "", client: Client = _NOWHERE) -> Flow[User]:
        """Remove a user's second factors (an admin's reset)."""
        return reset_factors(normalize_username(username), actor, client)

    # -- step-up and passkeys -------------------------------------------------------------

    @operation
    def reauth_options(self, identity: Identity) -> Flow[dict[str, Any]]:
        """What `identity` can prove itself with again (``methods``), and for a user
        with passkeys the options of ``navigator.credentials.get()`` (``passkey``)."""
        return reauth_options(self.mfa, identity)

    @operation
    def reauthenticate(
        self,
        identity: Identity,
        *,
        password: str | None = None,
        code: str | None = None,
        passkey: Mapping[str, Any] | str | None = None,
        passkey_token: str | None = None,
        client: Client = _NOWHERE,
    ) -> Flow[TokenPair | BrowserSession]:
        """Prove again who `identity` is (the password, or with a second factor a code
        or a passkey), for `require_fresh`: a new session of the same kind, whose
        ``auth_time`` is now; the old one ends.  Wrong proofs count toward the
        lock-out."""
        proof = {"password": password, "code": code, "passkey": passkey}
        proof["passkey_token"] = passkey_token
        return reauthenticate(self.rules, self.mfa, self.browser, identity, proof, client)

    def _passkeys(self) -> PasskeyRules:
        if self.mfa.passkeys is None:
            raise ConfigError("passkeys are off: set AUTHGATE_PASSKEY_RP_ID (docs/mfa.md)")
        return self.mfa.passkeys

    @operation
    def begin_passkey(self, identity: Identity) -> Flow[dict[str, Any]]:
        """The options of ``navigator.credentials.create()`` adding a passkey to
        `identity`'s account, and their token (a login within ``step_up_ttl``)."""
        require_account_right(identity, "account:mfa")
        check_fresh(self.mfa.step_up_ttl, identity)
        return begin_registration(self._passkeys(), identity.username)

    @operation
    def add_passkey(
        self,
        identity: Identity,
        passkey_token: str,
        credential: Mapping[str, Any] | str,
        name: str | None = None,
        client: Client = _NOWHERE,
    ) -> Flow[tuple[Passkey, list[str]]]:
        """Add the passkey of a registration's answer: it, and new recovery codes when
        the account had none (show them once)."""
        require_account_right(identity, "account:mfa")
        return self._added(identity.username, passkey_token, credential, name, client)

    def _added(
        self, username: str, token: str, credential: object, name: object, client: Client
    ) -> Flow[tuple[Passkey, list[str]]]:
        _, key, codes = yield from finish_registration(
            self._passkeys(), username, token, credential, name, client
        )
        return key, codes

    @operation
    def passkey_login_options(
        self, *, browser: bool = False, remember: bool = False
    ) -> Flow[dict[str, Any]]:
        """The options of ``navigator.credentials.get()`` for a login by passkey alone,
        and their token; `browser` logins open a browser session."""
        via = {"kind": "browser", "remember": remember} if browser else {"kind": "token"}
        return returning(self._passkeys().authentication(PASSKEY_LOGIN, None, (), via))

    @operation
    def passkey_login(
        self, passkey_token: str, credential: Mapping[str, Any] | str, client: Client = _NOWHERE
    ) -> Flow[TokenPair | BrowserSession]:
        """A login by passkey alone: the session its options were for."""
        return self._passkey_login(passkey_token, credential, client)

    def _passkey_login(
        self, token: str, credential: object, client: Client
    ) -> Flow[TokenPair | BrowserSession]:
        user, via = yield from passkey_login(
            self._passkeys(), self.rules, token, credential, client
        )
        return (
            yield from open_for(self.rules, self.browser, user, via, client, via["amr"], "passkey")
        )

    @operation
    def passkeys(self, identity: Identity) -> Flow[list[dict[str, Any]]]:
        """`identity`'s passkeys (no key material)."""
        return self._passkey_list(identity)

    def _passkey_list(self, identity: Identity) -> Flow[list[dict[str, Any]]]:
        user = yield from signed_in_user(identity)
        return passkey_list(user)

    @operation
    def remove_passkey(
        self, identity: Identity, credential_id: str, client: Client = _NOWHERE
    ) -> Flow[User]:
        """Remove one of `identity`'s passkeys (a login within ``step_up_ttl``)."""
        require_account_right(identity, "account:mfa")
        check_fresh(self.mfa.step_up_ttl, identity)
        return remove_passkey(identity.username, credential_id, client)

    @operation
    def browser_login(
        self, username: str, password: str, client: Client = _NOWHERE, *, remember: bool = False
    ) -> Flow[BrowserSession]:
        """Check credentials and open a browser session: its cookie's value, set with
        ``gate.browser.set_session``.  The same checks and answers as `login`."""
        ttl = self.browser.remember_ttl if remember else self.browser.session_ttl
        return browser_login(
            self.rules, username, password, client, ttl=ttl, remember=remember, mfa=self.mfa
        )

    @operation
    def request_password_reset(self, login: str, client: Client = _NOWHERE) -> Flow[None]:
        """Mail a password reset link to the account named `login`, if there is one:
        nothing tells the caller whether there was."""
        return request_password_reset(self.accounts, login, client)

    @operation
    def reset_password(
        self, token: str, new_password: str, client: Client = _NOWHERE
    ) -> Flow[User]:
        """Set a new password with a mailed reset link's token; every session ends.
        `InvalidLink` for a token that is malformed, expired, superseded or used."""
        return reset_password(self.accounts, token, new_password, client)

    @operation
    def request_verification(self, login: str, client: Client = _NOWHERE) -> Flow[None]:
        """Mail a link confirming the email address of the account named `login`."""
        return request_verification(self.accounts, login, client)

    @operation
    def verify_email(self, token: str, client: Client = _NOWHERE) -> Flow[User]:
        """Confirm an email address with a mailed verification link's token."""
        return verify_email(self.accounts, token, client)

    @operation
    def sign_up(
        self, /, username: str, password: str, client: Client = _NOWHERE, **profile: Any
    ) -> Flow[SignUp]:
        """Register an account (when ``signup`` is on) with the sign-up role."""
        return sign_up(self.accounts, username, password, client, profile)

    @operation
    def refresh(self, refresh_token: str, client: Client = _NOWHERE) -> Flow[TokenPair]:
        """Spend a refresh token for a new pair."""
        return refresh(self.rules, refresh_token, client)

    @operation
    def logout(self, identity: Identity, client: Client = _NOWHERE) -> Flow[bool]:
        """End the identity's session."""
        return logout(identity.username, identity.session_id, client)

    @operation
    def change_password(
        self, identity: Identity, current: str, new: str, client: Client = _NOWHERE
    ) -> Flow[User]:
        """Change one's own password; every other session of the user ends."""
        require_account_right(identity, "account:password")
        return change_password(
            self.rules, identity.username, current, new, client, identity.session_id or None
        )

    @operation
    def list_sessions(self, username: str) -> Flow[list[Session]]:
        """A user's live login sessions, oldest first."""
        listed = yield from call(Store.list_sessions, normalize_username(username))
        return [s for s in listed if s.kind == "login"]

    @operation
    def create_api_key(
        self,
        owner: Identity,
        name: str,
        permissions: list[str] | None = None,
        expires_in: int | None = None,
        client: Client = _NOWHERE,
    ) -> Flow[tuple[str, ApiKey]]:
        """A new API key for `owner`: the raw key (show it once) and its description."""
        return create_api_key(owner, name, permissions, expires_in, client)

    @operation
    def list_api_keys(self, username: str) -> Flow[list[ApiKey]]:
        """The user's live API keys (never the keys themselves)."""
        return list_api_keys(normalize_username(username))

    @operation
    def revoke_api_key(self, username: str, key_id: str, client: Client = _NOWHERE) -> Flow[bool]:
        """Revoke one of the user's API keys."""
        return revoke_api_key(normalize_username(username), key_id, client)

    @operation
    def revoke_session(
        self, username: str, session_id: str, client: Client = _NOWHERE
    ) -> Flow[bool]:
        """End one of the user's sessions; False when it is not theirs or gone."""
        return revoke_session(normalize_username(username), session_id, client)

    @operation
    def revoke_sessions(
        self, username: str, client: Client = _NOWHERE, keep: str | None = None
    ) -> Flow[int]:
        """End all of a user's sessions (but `keep`)."""
        return revoke_sessions(normalize_username(username), client, keep)

    @operation
    def explain(
        self,
        who: str | Identity,
        permission: str,
        *,
        obj: object | None = None,
        policy: Policy | None = None,
    ) -> Flow[Explanation]:
        """Whether `who` (a username, or an identity: an API key's is narrowed by the
        key's list) holds `permission`, with every grant and its source (role, group,
        direct, API key), those that decide, and, if refused, what refused it and what
        would allow it; the verdict is the identity's own decision.  With `obj`,
        `permission` is an action (``"read"``, ``"items:read"``) decided on that object
        by `policy` when given, else by the model's hooks (``async def`` ones awaited
        on the async face), each recorded with its answer.  `UserNotFound` for an
        unknown user; a malformed permission is a `ValidationError`."""
        name, lists = (yield from key_listing(who)) if isinstance(who, Identity) else ("", None)
        return (
            yield from explain_decision(
                self.policy, who, permission, obj, policy, key_name=name, key_lists=lists
            )
        )

    @operation
    def list_groups(self) -> Flow[list[Group]]:
        """The groups kept in the store (the policy's own are in ``policy``)."""
        groups = yield from call(Store.list_groups)
        return groups

    @operation
    def save_group(
        self, name: str, permissions: list[str], description: str = "", *, actor: str = ""
    ) -> Flow[Group]:
        """Create or replace a group kept in the store."""
        return _save_group(Group.new(name, permissions, description), actor)

    @operation
    def delete_group(self, name: str, *, actor: str = "") -> Flow[None]:
        """Delete a group kept in the store; `NotFound` when there is none."""
        return _delete_group(name, actor)

    @operation
    def filter(
        self, identity: Identity, action: str, objects: Iterable[T], *, policy: Policy | None = None
    ) -> Flow[list[T]]:
        """The objects `identity` may do `action` (``"items:read"`` or ``"read"``) on, in
        their order: judged by each model's hooks (``async def`` ones awaited on the
        async face), or by `policy` when given.  For rows of a SQL table, filter in the
        query instead (`authgate.permissions.sql.visible_rows`); for an async iterable,
        `authgate.permissions.afilter_objects`."""
        return visible_objects(identity, action, objects, policy)

    @operation
    def unlock(self, username: str) -> Flow[None]:
        """Lift a login lock-out."""
        return self.rules.lockout.unlock(normalize_username(username))

    @operation
    def create_user(
        self,
        /,
        username: str,
        password: str | None = None,
        *,
        passwordless: bool = False,
        **fields: Any,
    ) -> Flow[User]:
        """Create a user (password hashed with argon2id, off the event loop on the async
        face).  An account without a password (API keys only) needs
        ``passwordless=True``; a missing password is an error."""
        return _create_user(
            username, password, roles_order=self.roles, passwordless=passwordless, **fields
        )

    @operation
    def update_user(self, /, username: str, **changes: Any) -> Flow[User]:
        """Change roles, groups, permissions, enabled or profile fields.  Disabling
        ends the user's sessions; role changes apply on the next request."""
        version = changes.pop("expected_version", None)
        return _update_user(
            username, self.roles, expected_version=version, protected=self.protected, **changes
        )

    @operation
    def set_password(self, username: str, password: str) -> Flow[User]:
        """Set a password as an admin; every session of the user ends."""
        return _set_password(username, password)

    @operation
    def delete_user(self, username: str, *, acting: str | None = None) -> Flow[None]:
        """Delete a user and their sessions (never the last enabled admin or yourself)."""
        return _delete_user(username, self.roles, acting=acting, protected=self.protected)

    @operation
    def ensure_superuser(self) -> Flow[Bootstrap]:
        """Make sure an enabled admin exists (see `authgate.ensure_superuser`)."""
        return _bootstrap(self.settings, self.roles)

    @operation
    def close(self) -> Flow[None]:
        """Release the store's connections (and stop refreshing issuers' keys)."""
        if self._refresher is not None:
            self._refresher.stop()
        return call(Store.close)


class Gate(_Gate[Store], SyncFace):
    """The sync face: logins, tokens, sessions and user administration over a `Store`.

    ``store`` is a `Store` or a store URL (default: ``settings.store``); any other
    keyword overrides a `Settings` field: ``Gate(store="memory://", secret_key=...)``.
    """

    _open = staticmethod(open_store)

    def run(self, flow: Steps[T]) -> T:
        """Drive any flow (the HTTP API's answers, a flow of your own) against this
        gate's store, with its hasher and audit log."""
        try:
            return run(flow, self.store, self.hasher, self.audit.emit)
        except AuthGateError as err:
            note_refusal(err)  # for a framework that answers it with a 500 of its own
            raise

    _drive = run


class AsyncGate(_Gate[AsyncStore], AsyncFace):
    """The async face of `Gate` over an `AsyncStore`: the same operations, awaited;
    argon2 runs on a bounded thread pool, never on the event loop."""

    _open = staticmethod(open_async_store)

    async def run(self, flow: Steps[T]) -> T:
        """Drive any flow (the HTTP API's answers, a flow of your own) against this
        gate's store, with its hasher and audit log; argon2 off the event loop."""
        try:
            return await arun(flow, self.store, self.hasher, self.audit.emit)
        except AuthGateError as err:
            note_refusal(err)  # for a framework that answers it with a 500 of its own
            raise

    _drive = run

    def authentication(self, token: str) -> Steps[Identity]:
        """`authenticate` as steps, each store and cache read once: already done
        (`authgate.faces.answered`) when the caches decide, else for `run`.  The ASGI
        middleware's path: no coroutine when nothing waits, no second look on a miss."""
        return self._authentication(token)

    def authenticate_nowait(self, token: str) -> Identity | None:
        """The identity when it can be decided without I/O (stateless mode, or a cached
        session check), None when `authenticate` must be awaited; `InvalidToken` for a
        bad token.  The ASGI middleware's fast path."""
        if is_api_key(token) or is_session_cookie(token):
            return None
        if self._trusts_issuers and self._external(token) is not None:
            return None
        return self._quick(token)[1]

    def ensure_superuser_now(self) -> Bootstrap:
        """`ensure_superuser`, run synchronously: for module import time, before any
        event loop runs (``uvicorn module:app`` imports inside its loop)."""
        shared: Store | None = getattr(self.store, "sync", None)  # memory and SQLite
        store = shared if shared is not None else open_store(self.settings.store)
        try:
            return run(_bootstrap(self.settings, self.roles), store, self.hasher, self.audit.emit)
        finally:
            if shared is None:
                store.close()
