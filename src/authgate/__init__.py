"""authgate: authentication and authorization in front of any WSGI or ASGI app."""

from __future__ import annotations

from .audit import AuditEvent, AuditLog
from .bootstrap import aensure_superuser, ensure_superuser
from .config import Settings
from .context import as_identity, current_identity
from .decorators import (
    require,
    require_auth,
    require_object_permission,
    require_permission,
    require_role,
)
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
from .http import CredentialRules
from .identity import ANONYMOUS, Identity
from .middleware.asgi import AuthGateMiddleware
from .middleware.wsgi import AuthGateWSGIMiddleware
from .passwords import Argon2Params, PasswordHasher, PasswordPolicy
from .permissions import (
    AllowAll,
    DenyAll,
    HasPermission,
    HasRole,
    IsAuthenticated,
    IsOwner,
    PermissionSet,
    Policy,
    RolePolicy,
    check_object,
)
from .sessions import Client, TokenPair
from .stores import AsyncStore, Page, Session, Store, open_async_store, open_store
from .tokens import Key, KeyRing, TokenVerifier
from .users import DEFAULT_ROLES, Group, Role, RoleHierarchy, User, normalize_username

__version__ = "0.1.0"

__all__ = [
    "ANONYMOUS",
    "DEFAULT_ROLES",
    "AccountLocked",
    "AllowAll",
    "Argon2Params",
    "AsyncGate",
    "AsyncStore",
    "AuditEvent",
    "AuditLog",
    "AuthGateError",
    "AuthGateMiddleware",
    "AuthGateWSGIMiddleware",
    "AuthenticationError",
    "AuthorizationError",
    "BadCredentials",
    "Client",
    "ConfigError",
    "Conflict",
    "CredentialRules",
    "DenyAll",
    "ExpiredToken",
    "Gate",
    "Group",
    "HasPermission",
    "HasRole",
    "Identity",
    "InvalidPassword",
    "InvalidSignature",
    "InvalidToken",
    "InvalidTokenClaims",
    "InvalidUsername",
    "IsAuthenticated",
    "IsOwner",
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
    "PermissionSet",
    "Policy",
    "Role",
    "RoleHierarchy",
    "RolePolicy",
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
    "as_identity",
    "check_object",
    "current_identity",
    "ensure_superuser",
    "normalize_username",
    "open_async_store",
    "open_store",
    "require",
    "require_auth",
    "require_object_permission",
    "require_permission",
    "require_role",
]
