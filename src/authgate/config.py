"""Settings: keyword arguments, environment variables or a TOML file, same names.

Each setting ``name`` is read from ``AUTHGATE_<NAME>`` in the environment and from
``name`` in a TOML file (top level, or an ``[authgate]`` table).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import sys
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .passwords import Argon2Params, LegacyHashes, PasswordHasher, PasswordPolicy
from .users import normalize_username

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["ENV_PREFIX", "Settings"]

ENV_PREFIX = "AUTHGATE_"
_COOKIE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class Settings:
    """Everything an authgate deployment configures.  No default secret exists."""

    store: str = "sqlite:///authgate.db"
    secret_key: str | None = field(default=None, repr=False)
    previous_secret_keys: tuple[str, ...] = field(default=(), repr=False)
    private_key_file: str | None = None
    public_key_file: str | None = None
    previous_public_key_files: tuple[str, ...] = ()
    algorithm: str = "HS256"
    issuer: str = "authgate"
    audience: str = "authgate"
    access_ttl: int = 900
    refresh_ttl: int = 1_209_600
    leeway: int = 0
    max_login_attempts: int = 5
    lockout_seconds: int = 300
    lockout_window: int = 300
    max_sessions: int = 0
    #: Failed credential checks (logins, refresh tokens, SCRAM proofs) one client
    #: address may make per ``address_window`` seconds (0: no limit), and per address and
    #: username (0: no limit); an IPv6 address counts by its /64.
    max_failures_per_address: int = 50
    max_failures_per_address_user: int = 0
    address_window: int = 300
    session_touch_interval: int = 300
    session_limit_policy: str = "evict_oldest"
    stateless: bool = False
    dev_mode: bool = False
    roles: tuple[str, ...] = ("viewer", "operator", "admin")
    policy_file: str | None = None
    superuser_username: str | None = None
    superuser_password: str | None = field(default=None, repr=False)
    protect_root: bool = False
    require_if_match: bool = False
    #: Answer 404, as for a missing object, when a caller may not see an object (the
    #: object guards' default; each guard may say otherwise with ``hide=``).
    hide_objects: bool = False
    log_format: str = "text"
    guest_username: str | None = None
    guest_password: str | None = field(default=None, repr=False)
    guest_role: str | None = None  # None: the lowest role (PlantDB's guest is a reader)
    password_min_length: int = 8
    password_max_bytes: int = 4096
    argon2_time_cost: int = 3
    argon2_memory_cost: int = 65536
    argon2_parallelism: int = 4
    #: Verify hashes other libraries stored (bcrypt, Django, passlib, argon2 with other
    #: parameters) and rehash them at login; off: argon2id only.
    legacy_hashes: bool = True
    #: Flask-Security's SECURITY_PASSWORD_SALT, for the hashes it made of the password's
    #: HMAC (its default); passwords are then also tried NFKD-normalised, as it did.
    flask_security_salt: str | None = field(default=None, repr=False)

    # -- browsers (docs/browser.md) ---------------------------------------------------
    #: Serve browser logins: ``POST /auth/session`` answers with a session cookie, the
    #: middlewares read it (with a CSRF check on unsafe methods) and page requests
    #: without a session are sent to ``login_url``.
    cookie_sessions: bool = False
    #: The session and CSRF cookies' names; ``__Host-`` is put in front when the
    #: cookies are ``Secure``, have no ``Domain`` and the path ``/`` (so no subdomain
    #: and no other path can set or shadow them).
    cookie_name: str = "authgate_session"
    csrf_cookie_name: str = "authgate_csrf"
    cookie_secure: bool = True
    cookie_samesite: str = "lax"
    cookie_domain: str | None = None
    cookie_path: str = "/"
    #: The request header and the form field that carry the CSRF token.
    csrf_header: str = "x-csrf-token"
    csrf_field: str = "csrf_token"
    #: How long a browser session lasts without "remember me" (its cookie ends with
    #: the browser), and with it (a persistent cookie on the same revocable session).
    browser_session_ttl: int = 43_200
    remember_ttl: int = 2_592_000
    #: Where a page request without a session is redirected, with ``?next=`` the page.
    login_url: str | None = None
    #: Where a browser goes after logging in and out when its form names no ``next``.
    home_url: str = "/"

    # -- self-service accounts ---------------------------------------------------------
    #: The site's own address, the start of every link mailed (``https://app.example``):
    #: never taken from a request's ``Host``, which a client chooses.
    public_url: str | None = None
    #: ``smtp://user:password@host:587``, ``smtps://...``, ``console://`` (development:
    #: mails are printed) or ``memory://`` (tests); None: nothing is mailed, and the
    #: flows that need mail are off.
    mail_url: str | None = field(default=None, repr=False)
    mail_from: str = "authgate@localhost"
    #: A directory of message templates overriding the built-in ones (docs/mail.md).
    mail_templates: str | None = None
    #: The pages the mailed links open (paths under ``public_url``); each receives
    #: ``?token=``.
    reset_url: str = "/reset-password"
    verify_url: str = "/verify-email"
    reset_ttl: int = 3600
    verify_ttl: int = 86_400
    #: Requests for reset or verification mail one address, and one account, may make
    #: per ``mail_window`` seconds; past the account's, the answer stays the same and
    #: nothing is sent.
    max_mail_requests_per_address: int = 20
    max_mail_requests_per_account: int = 3
    mail_window: int = 3600
    #: Self-registration (``POST /auth/signup``): off unless turned on.
    signup: bool = False
    #: The role a signed-up user gets (None: the lowest role); nobody chooses their own.
    signup_role: str | None = None
    #: Refuse logins until the user has confirmed their email address.
    require_verified_email: bool = False
    #: Usernames are email addresses: the username is the (normalised) address, so the
    #: address is unique, and the email field is kept equal to it.
    email_login: bool = False

    # -- second factors (docs/mfa.md) -------------------------------------------------
    #: Roles whose holders (and holders of roles including them) must have a second
    #: factor: their login asks them to enrol one.
    mfa_roles: tuple[str, ...] = ()
    #: Seconds the challenge of a login's second step lasts.
    mfa_challenge_ttl: int = 300
    #: The page where a browser's form login goes for its second step (the challenge
    #: in a cookie); None: such a login goes back with ``?error=mfa_required``.
    mfa_url: str | None = None
    #: How recent (seconds) a login or ``POST /auth/reauth`` must be to add or remove a
    #: second factor or passkey (what `require_fresh` asks of authgate's own endpoints).
    step_up_ttl: int = 600
    #: Passkeys (WebAuthn, docs/mfa.md): the relying party's id, the site's domain
    #: (``example.com``); None turns passkeys off.
    passkey_rp_id: str | None = None
    #: The name authenticators show for the site (default: ``issuer``).
    passkey_rp_name: str | None = None
    #: The origins whose pages run passkey ceremonies (default: ``https://<rp id>``).
    passkey_origins: tuple[str, ...] = ()

    # -- identity providers (docs/issuers.md) -------------------------------------------
    #: Providers whose access tokens are accepted beside authgate's own: `TrustedIssuer`
    #: objects or tables of their settings (``[[authgate.trusted_issuers]]`` in TOML;
    #: a JSON array in AUTHGATE_TRUSTED_ISSUERS).
    trusted_issuers: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        from .issuers import normalised_issuers

        object.__setattr__(self, "trusted_issuers", normalised_issuers(self.trusted_issuers))
        for name in (
            "access_ttl",
            "refresh_ttl",
            "lockout_seconds",
            "lockout_window",
            "address_window",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be a positive number of seconds")
        for name in (
            "max_login_attempts",
            "max_sessions",
            "leeway",
            "max_failures_per_address",
            "max_failures_per_address_user",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative")
        if self.log_format not in ("text", "json", "none"):
            raise ConfigError("log_format must be 'text', 'json' or 'none'")
        if self.session_limit_policy not in ("evict_oldest", "refuse"):
            raise ConfigError("session_limit_policy must be 'evict_oldest' or 'refuse'")
        for name in (
            "browser_session_ttl",
            "remember_ttl",
            "reset_ttl",
            "verify_ttl",
            "mail_window",
            "mfa_challenge_ttl",
            "step_up_ttl",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be a positive number of seconds")
        for name in ("max_mail_requests_per_address", "max_mail_requests_per_account"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative")
        if self.cookie_samesite not in ("lax", "strict", "none"):
            raise ConfigError("cookie_samesite must be 'lax', 'strict' or 'none'")
        if self.cookie_samesite == "none" and not self.cookie_secure:
            raise ConfigError("cookie_samesite 'none' needs cookie_secure: browsers refuse it")
        for name in ("cookie_name", "csrf_cookie_name"):
            if not _COOKIE_NAME.fullmatch(getattr(self, name)):
                raise ConfigError(f"{name} must be letters, digits, '_' or '-'")
        if self.cookie_name == self.csrf_cookie_name:
            raise ConfigError("cookie_name and csrf_cookie_name must differ")
        if not self.cookie_path.startswith("/"):
            raise ConfigError("cookie_path must start with '/'")
        for name in ("login_url", "home_url", "reset_url", "verify_url", "mfa_url"):
            value = getattr(self, name)
            if value is not None and not value.startswith("/") and "://" not in value:
                raise ConfigError(f"{name} must be a path ('/login') or an absolute URL")
        if self.public_url is not None and not self.public_url.startswith(("https://", "http://")):
            raise ConfigError("public_url must be the site's http(s) address")
        for origin in self.passkey_origins:
            if not origin.startswith(("https://", "http://")) or origin.count("/") != 2:
                raise ConfigError(
                    f"passkey_origins: {origin!r} is not an origin (https://example.com[:port])"
                )
        if self.passkey_origins and not self.passkey_rp_id:
            raise ConfigError("passkey_origins is set but passkey_rp_id is not")
        if self.password_min_length < 1 or self.password_max_bytes < self.password_min_length:
            raise ConfigError("password_min_length must be >= 1 and <= password_max_bytes")

    @property
    def protected_usernames(self) -> frozenset[str]:
        """The users no one may delete, disable or demote: the superuser when
        `protect_root` is on (the Gate, the HTTP API and the CLI all read this)."""
        if not (self.protect_root and self.superuser_username):
            return frozenset()
        return frozenset({normalize_username(self.superuser_username)})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``AUTHGATE_*`` variables, then `overrides` on top."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _parse(f.name, f.type, raw)
        values.update(overrides)
        return cls(**values)

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, object],
        environ: Mapping[str, str] | None = None,
        *,
        own: Collection[str] = (),
    ) -> Settings:
        """Settings from the environment, with the ``AUTHGATE_*`` entries of a
        framework's configuration on top (Flask's ``app.config``, Django's
        ``settings.py``).  A value is a string, number, boolean, UTF-8 bytes or a list
        of strings (for a list setting); None leaves the environment's value.  An
        ``AUTHGATE_*`` name authgate does not know (a typo) or a value of another type
        is a `ConfigError` naming the setting, never its value.  `own` names the
        entries the framework's integration reads itself."""
        env = dict(os.environ if environ is None else environ)
        known = {ENV_PREFIX + f.name.upper() for f in fields(cls)}
        for name, value in config.items():
            if not name.startswith(ENV_PREFIX) or name in own or value is None:
                continue
            if name not in known:
                close = difflib.get_close_matches(name, known | set(own), n=1)
                hint = f"; did you mean {close[0]}?" if close else ""
                raise ConfigError(f"{name} is not an authgate setting{hint}")
            env[name] = _config_text(name, value)
        return cls.from_env(env)

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> Settings:
        """Settings from a TOML file (top level or an ``[authgate]`` table)."""
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise ConfigError(f"cannot read settings from {path}: {err}") from err
        table = data.get("authgate", data)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(table) - known)
        if unknown:
            raise ConfigError(f"unknown settings in {path}: {', '.join(unknown)}")
        values: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in table.items()
        }
        values.update(overrides)
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        """A copy with `changes` applied."""
        return dataclasses.replace(self, **changes)

    def password_hasher(self) -> PasswordHasher:
        """The argon2id hasher these settings describe."""
        return PasswordHasher(
            Argon2Params(
                time_cost=self.argon2_time_cost,
                memory_cost=self.argon2_memory_cost,
                parallelism=self.argon2_parallelism,
            ),
            PasswordPolicy(self.password_min_length, self.password_max_bytes),
            legacy=LegacyHashes(
                enabled=self.legacy_hashes,
                flask_security_salt=self.flask_security_salt,
                normalize="NFKD" if self.flask_security_salt else None,
            ),
        )


def _config_text(name: str, value: object) -> str:
    """A configuration value as the environment would spell it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise ConfigError(f"{name} is bytes that are not UTF-8 text") from None
    if isinstance(value, list | tuple) and all(  # ordered: a role list ranks its roles
        isinstance(item, str) and "," not in item for item in value
    ):
        return ",".join(value)
    raise ConfigError(
        f"{name} must be a string, a number, a boolean or a list of strings without "
        f"commas, not {type(value).__name__}"
    )


def _parse(name: str, kind: Any, raw: str) -> Any:
    var = ENV_PREFIX + name.upper()
    kind = str(kind)
    if kind.startswith("bool"):
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{var} must be true or false, not {raw!r}")
    if kind.startswith("int"):
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{var} must be an integer, not {raw!r}") from None
    if name == "trusted_issuers":
        return raw  # a JSON array, read by `normalised_issuers`
    if kind.startswith("tuple"):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return raw
