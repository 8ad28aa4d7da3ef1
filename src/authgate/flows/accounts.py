"""Self-service accounts, as flows: password reset, email verification and sign-up.

A mailed link carries a signed, expiring token (`AccountTokens`: a JWT of its own
``typ`` per purpose, signed by the gate's key ring) bound to the user's id, to the user's
version when it was issued (so any change to the user, a password change above all,
spends it) and to a per-user issue counter in the store (so asking again supersedes
every earlier link, and using one spends them all).  Each token is also spent by its own
use: a reset bumps the version.

Asking for a link answers the same, with the same store operations in the same order,
whether the account exists or not; the mail goes out on a background thread
(`authgate.mail.Outbox`), so its delivery takes no time of the request's.  Requests
count per client address (past the limit: 429, for everybody alike) and per account
(past the limit nothing more is sent, and the answer does not change).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..audit import AuditEvent
from ..errors import (
    ConfigError,
    InvalidToken,
    InvalidUsername,
    NotFound,
    StoreError,
    TooManyAttempts,
    UserExists,
    ValidationError,
)
from ..identity import Client
from ..mail import MailMessage, MailTemplates, Outbox
from ..stores.base import Store
from ..tokens import TokenVerifier
from ..users import RoleHierarchy, User, normalize_username
from .ops import Emit, Flow, call
from .sessions import SessionRules
from .users import create_user, password_fields

__all__ = [
    "AccountRules",
    "AccountTokens",
    "InvalidLink",
    "SignUp",
    "normalize_email",
    "request_password_reset",
    "request_verification",
    "reset_password",
    "sign_up",
    "signup_role",
    "verify_email",
]

RESET = "reset"
VERIFY = "verify"
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+")


class InvalidLink(ValidationError):
    """A reset or verification link that is malformed, expired, superseded or used."""

    code = "invalid_link"
    default_detail = "this link is invalid, expired or already used: ask for a new one"


def normalize_email(value: object) -> str:
    """An email address as authgate keeps it where it is a login name: NFKC and
    case-folded like every username (so two spellings are one account), checked for
    the shape ``local@domain.tld``."""
    if not isinstance(value, str) or not _EMAIL.fullmatch(value):
        raise ValidationError("a valid email address is required", field="email")
    try:
        return normalize_username(value)
    except InvalidUsername:
        raise ValidationError(
            "this email address cannot be a login name: use letters, digits and . _ - + @",
            field="email",
        ) from None


class AccountTokens:
    """Signs and checks the tokens of mailed links, one kind per purpose: a reset
    token is never a verification token, and neither is ever an access token."""

    def __init__(self, verifier: TokenVerifier, ttls: Mapping[str, int]) -> None:
        ring = verifier.ring
        self.ttls = dict(ttls)
        self._verifiers = {
            purpose: TokenVerifier(
                ring,
                issuer=verifier.issuer,
                audience=f"{verifier.audience}#{purpose}",
                typ=f"authgate-{purpose}+jwt",
                cache_size=64,
            )
            for purpose in self.ttls
        }

    def issue(self, purpose: str, user: User, issued: int) -> str:
        """A token for `user` as they are now, the `issued`-th of its purpose."""
        claims = {
            "sub": user.username,
            "uid": user.id,
            "sid": str(issued),  # the issue number: a later link supersedes this one
            "ver": user.version,
            "email": user.email,
            "roles": [],
            "groups": [],
            "perms": [],
        }
        return self._verifiers[purpose].issue(claims, self.ttls[purpose])

    def read(self, purpose: str, token: object) -> Mapping[str, Any]:
        """The claims of a valid token of `purpose`, else `InvalidLink`."""
        if not isinstance(token, str) or not token or len(token) > 4096:
            raise InvalidLink()
        try:
            return self._verifiers[purpose].verify(token)
        except InvalidToken:
            raise InvalidLink() from None


@dataclass(frozen=True, slots=True)
class AccountRules:
    """Everything the account flows need, fixed when a `Gate` is built."""

    sessions: SessionRules
    tokens: AccountTokens
    roles: RoleHierarchy
    outbox: Outbox | None = None
    templates: MailTemplates = field(default_factory=MailTemplates)
    public_url: str = ""
    reset_url: str = "/reset-password"
    verify_url: str = "/verify-email"
    site: str = "authgate"
    max_per_address: int = 20
    max_per_account: int = 3
    window: int = 3600
    signup: bool = False
    signup_role: str | None = None
    require_verified_email: bool = False
    email_login: bool = False

    @property
    def mails(self) -> bool:
        """Can links be mailed (a mailer and the site's public address configured)?"""
        return self.outbox is not None and bool(self.public_url)

    def page(self, path: str) -> str:
        """The address of one of the site's pages."""
        return f"{self.public_url.rstrip('/')}{path}"

    def link(self, path: str, token: str) -> str:
        """The mailed link to `path` carrying `token`."""
        separator = "&" if "?" in path else "?"
        return f"{self.public_url.rstrip('/')}{path}{separator}token={token}"

    def message(self, kind: str, user: User, **values: str) -> MailMessage:
        """The `kind` mail to `user`, rendered (also for a stand-in that is never sent:
        the work of a request must not tell whether it mailed)."""
        minutes = str(self.tokens.ttls.get(RESET if kind != "verify_email" else VERIFY, 0) // 60)
        return self.templates.render(
            kind,
            user.email or "nobody@invalid",
            username=user.username,
            email=user.email or "nobody@invalid",
            site=self.site,
            minutes=minutes,
            **values,
        )

    def mail(self, kind: str, user: User, **values: str) -> None:
        """Hand the `kind` mail to `user` to the outbox (which never blocks: delivery
        is its thread's), when the user has an address."""
        if self.outbox is not None and user.email:
            self.outbox.submit(self.message(kind, user, **values))


def _issue_key(purpose: str, username: str) -> str:
    return f"account-link:{purpose}:{username}"


def _counted(
    rules: AccountRules, client: Client, username: str, *, account: bool = True
) -> Flow[bool]:
    """Count a request for a mail: `TooManyAttempts` past the address's limit (which
    says nothing about the account), False past the account's (nothing is sent);
    without `account`, the address's limit alone (a sign-up that mails nothing)."""
    if rules.max_per_address:
        seen = yield from call(Store.incr, f"account-mail:addr:{client.ip}", rules.window)
        if seen > rules.max_per_address:
            raise TooManyAttempts(
                rules.window, "too many requests for mail from this address: try again later"
            )
    if not (account and rules.max_per_account):
        return True
    asked = yield from call(Store.incr, f"account-mail:user:{username}", rules.window)
    return asked <= rules.max_per_account


def _new_link(rules: AccountRules, purpose: str, name: str, user: User) -> Flow[str]:
    """Issue the next token of `purpose` for `user` on `name`'s issue counter (made on
    a throwaway counter, and thrown away, when nothing is sent: the same operations)."""
    key = _issue_key(purpose, name)
    ttl = rules.tokens.ttls[purpose]
    issued = yield from call(Store.incr, key, ttl)
    yield from call(Store.expire_counter, key, ttl)  # the newest link lives its full time
    return rules.tokens.issue(purpose, user, issued)


def _lookup(login: object) -> str | None:
    """The username a request names, or None for a name no account can have."""
    try:
        return normalize_username(login) if isinstance(login, str) else None
    except InvalidUsername:
        return None


def request_password_reset(rules: AccountRules, login: object, client: Client) -> Flow[None]:
    """Mail a reset link to the account `login` names, if there is one with an address:
    the same answer and operations otherwise."""
    return _request_link(
        rules, RESET, login, client, lambda user: user.enabled, "password_reset_requested"
    )


def request_verification(rules: AccountRules, login: object, client: Client) -> Flow[None]:
    """Mail a verification link to the account `login` names when its address is not
    confirmed yet: the same answer and operations otherwise."""
    return _request_link(
        rules, VERIFY, login, client, lambda user: not user.email_verified, "verification_requested"
    )


def _request_link(
    rules: AccountRules,
    purpose: str,
    login: object,
    client: Client,
    eligible: Callable[[User], bool],
    event: str,
) -> Flow[None]:
    """Mail a link of `purpose` to the account `login` names when it has an address
    and is `eligible`; the same operations, in the same order, whoever is named."""
    if not rules.mails:
        raise NotFound("links by mail are not configured (AUTHGATE_MAIL_URL, AUTHGATE_PUBLIC_URL)")
    name = _lookup(login) or "-"
    user = yield from call(Store.get_user, name)
    wanted = yield from _counted(rules, client, name)
    sent = wanted and user is not None and bool(user.email) and eligible(user)
    # Only a link that is mailed supersedes the earlier ones: requests that mail
    # nothing (past the account's limit) cannot spend the link in someone's mailbox.
    recipient = user if sent and user is not None else User(username=name, id="-")
    token = yield from _new_link(rules, purpose, name if sent else "-", recipient)
    kind, page = _MAILS[purpose]
    message = rules.message(kind, recipient, link=rules.link(getattr(rules, page), token))
    yield Emit(
        AuditEvent(event, name, client_ip=client.ip, detail="mailed" if sent else "nothing sent")
    )
    if sent and rules.outbox is not None:
        rules.outbox.submit(message)


_MAILS = {RESET: ("password_reset", "reset_url"), VERIFY: ("verify_email", "verify_url")}


def _redeem(rules: AccountRules, purpose: str, token: object) -> Flow[User]:
    """The user a link's token names, if the token is still good: the user exists, is
    the one it was issued for, unchanged since, and no later link was issued."""
    claims = rules.tokens.read(purpose, token)
    user = yield from call(Store.get_user, claims["sub"])
    issued = yield from call(Store.get_counter, _issue_key(purpose, claims["sub"]))
    if (
        user is None
        or not user.enabled
        or user.id != claims.get("uid")
        or user.version != claims["ver"]
        or user.email != claims.get("email")
        or str(issued) != claims["sid"]
    ):
        raise InvalidLink()
    return user


def reset_password(
    rules: AccountRules, token: object, new_password: object, client: Client
) -> Flow[User]:
    """Set a new password with a reset link's token: every session of the user ends,
    a lock-out is lifted, the link and every earlier one are spent, and the user is
    told by mail.  The password is checked against the policy before anything else."""
    if not isinstance(new_password, str):
        raise ValidationError("field 'new_password' must be a string", field="new_password")
    rules.sessions.hasher.policy.check(new_password)
    user = yield from _redeem(rules, RESET, token)
    secrets_ = yield from password_fields(new_password)
    try:  # the mailed link proves the address: it is confirmed too
        saved = yield from call(
            Store.update_user, user.changed(**secrets_, email_verified=True), user.version
        )
    except StoreError as err:
        if err.status == 503:
            raise
        raise InvalidLink() from None  # used a moment ago by another request
    key = _issue_key(RESET, user.username)
    yield from call(Store.incr, key, rules.tokens.ttls[RESET])
    count = yield from call(Store.revoke_user_sessions, user.username, None)
    yield from rules.sessions.lockout.unlock(user.username)
    yield Emit(
        AuditEvent(
            "password_reset", user.username, client_ip=client.ip, detail=f"{count} sessions revoked"
        )
    )
    rules.mail("password_changed", saved)
    return saved


def verify_email(rules: AccountRules, token: object, client: Client) -> Flow[User]:
    """Confirm the address a verification link was mailed to."""
    user = yield from _redeem(rules, VERIFY, token)
    try:
        saved = yield from call(Store.update_user, user.changed(email_verified=True), user.version)
    except StoreError as err:
        if err.status == 503:
            raise
        raise InvalidLink() from None
    yield from call(Store.incr, _issue_key(VERIFY, user.username), rules.tokens.ttls[VERIFY])
    yield Emit(AuditEvent("email_verified", user.username, client_ip=client.ip))
    return saved


@dataclass(frozen=True, slots=True)
class SignUp:
    """What a sign-up did: the user when one was made (None when the answer must not
    say whether the name was taken) and whether a verification mail was sent."""

    user: User | None
    verification_sent: bool


_SIGNUP_FIELDS = ("email", "first_name", "last_name", "display_name")


def signup_role(roles: RoleHierarchy, configured: str | None) -> str:
    """The role a signed-up user gets: `configured`, else the one lowest role; never
    one that includes the top role.  A `ConfigError` when there is no such role (a
    role graph with several lowest roles must name one)."""
    if configured:
        (role,) = roles.known([configured])
    else:
        lowest = [name for name in roles.order if roles.implied([name]) == {name}]
        if len(lowest) != 1:
            raise ConfigError(
                f"sign-up needs AUTHGATE_SIGNUP_ROLE: the roles {', '.join(lowest)} are all "
                "lowest, and authgate will not pick one"
            )
        (role,) = lowest
    if roles.top in roles.implied([role]):
        raise ConfigError(
            f"sign-up would give {role}, which includes {roles.top}: set AUTHGATE_SIGNUP_ROLE "
            "to a role below it"
        )
    return role


def sign_up(
    rules: AccountRules,
    username: object,
    password: object,
    client: Client,
    profile: Mapping[str, Any] | None = None,
) -> Flow[SignUp]:
    """Register a new account with the lowest role (or ``signup_role``): never a role,
    group or permission of one's own choosing.

    With ``require_verified_email`` the answer does not say whether the name was taken:
    a taken one costs the same hash, and its owner gets a mail saying someone tried."""
    if not rules.signup:
        raise NotFound("sign-up is not enabled")
    fields = dict(profile or {})
    unknown = sorted(set(fields) - set(_SIGNUP_FIELDS))
    if unknown:
        raise ValidationError(f"unknown field {unknown[0]!r}", field=unknown[0])
    if not isinstance(password, str):
        raise ValidationError("field 'password' must be a string", field="password")
    if not isinstance(username, str):
        raise ValidationError("field 'username' must be a string", field="username")
    if rules.email_login:
        email = normalize_email(fields.get("email") or username)
        if fields.get("email") and normalize_email(username) != email:
            raise ValidationError("the username is the email address here", field="email")
        username, fields["email"] = email, email
    elif rules.require_verified_email or fields.get("email"):
        address = fields.get("email")
        if not isinstance(address, str) or not _EMAIL.fullmatch(address):
            raise ValidationError("a valid email address is required", field="email")
    rules.sessions.hasher.policy.check(password)
    role = signup_role(rules.roles, rules.signup_role)
    verify = rules.require_verified_email and rules.mails
    # Sign-ups count against the address's limit (each costs a hash), mailed or not.
    wanted = yield from _counted(rules, client, normalize_username(username), account=verify)
    try:
        user = yield from create_user(
            username,
            password,
            roles=[role],
            actor="signup",
            roles_order=rules.roles,
            **fields,
        )
    except UserExists:
        if not rules.require_verified_email:
            raise
        existing = yield from call(Store.get_user, normalize_username(username))
        yield from _new_link(rules, VERIFY, "-", User(username="-", id="-"))  # as below
        yield Emit(
            AuditEvent(
                "signup_refused",
                normalize_username(username),
                client_ip=client.ip,
                detail="the name is taken; its owner is told",
            )
        )
        if verify and wanted and existing is not None and existing.email:
            rules.mail("account_exists", existing, link=rules.page(rules.reset_url))
        return SignUp(None, verify)
    if not verify:
        return SignUp(user, False)
    token = yield from _new_link(rules, VERIFY, user.username, user)
    if wanted:
        rules.mail("verify_email", user, link=rules.link(rules.verify_url, token))
    return SignUp(None, True)
