"""authgate: authentication and authorization in front of any WSGI or ASGI app."""

from __future__ import annotations

from .audit import AuditEvent, AuditLog
from .bootstrap import aensure_superuser, ensure_superuser
from .config import Settings
from .errors import (
    AccountLocked,
    AuthenticationError,
    AuthGateError,
    AuthorizationError,
    BadCredentials,
    ConfigError,
    Conflict,
    ExpiredToken,
    InvalidPassword,
    InvalidSignature,
    InvalidToken,
    InvalidTokenClaims,
    InvalidUsername,
    LastAdminError,
    MalformedToken,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    SessionLimitReached,
    SessionRevoked,
    StoreError,
    StoreUnavailable,
    TokenNotYetValid,
    UnknownKey,
    UserExists,
    UserNotFound,
    ValidationError,
    VersionConflict,
)
from .gate import AsyncGate, Gate
from .identity import ANONYMOUS, Identity
from .passwords import Argon2Params, PasswordHasher, PasswordPolicy
from .sessions import Client, TokenPair
from .stores import AsyncStore, Page, Session, Store, open_async_store, open_store
from .tokens import Key, KeyRing, TokenVerifier
from .users import DEFAULT_ROLES, Group, Role, RoleHierarchy, User, normalize_username

__version__ = "0.1.0"

__all__ = [
    "ANONYMOUS",
    "DEFAULT_ROLES",
    "AccountLocked",
    "Argon2Params",
    "AsyncGate",
    "AsyncStore",
    "AuditEvent",
    "AuditLog",
    "AuthGateError",
    "AuthenticationError",
    "AuthorizationError",
    "BadCredentials",
    "Client",
    "ConfigError",
    "Conflict",
    "ExpiredToken",
    "Gate",
    "Group",
    "Identity",
    "InvalidPassword",
    "InvalidSignature",
    "InvalidToken",
    "InvalidTokenClaims",
    "InvalidUsername",
    "Key",
    "KeyRing",
    "LastAdminError",
    "MalformedToken",
    "NotAuthenticated",
    "NotFound",
    "Page",
    "PasswordHasher",
    "PasswordPolicy",
    "PermissionDenied",
    "Role",
    "RoleHierarchy",
    "Session",
    "SessionLimitReached",
    "SessionRevoked",
    "Settings",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "TokenNotYetValid",
    "TokenPair",
    "TokenVerifier",
    "UnknownKey",
    "User",
    "UserExists",
    "UserNotFound",
    "ValidationError",
    "VersionConflict",
    "aensure_superuser",
    "ensure_superuser",
    "normalize_username",
    "open_async_store",
    "open_store",
]
