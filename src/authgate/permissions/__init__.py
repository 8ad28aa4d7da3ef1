"""Permissions: ``resource:action`` grants (`grants`), role policies (`roles`),
composable guards and object hooks (`policies`)."""

from __future__ import annotations

from .grants import Grant, PermissionSet, parse_grant
from .policies import (
    AllowAll,
    DenyAll,
    HasPermission,
    HasRole,
    IsAuthenticated,
    IsOwner,
    ObjectHooks,
    Policy,
    check_object,
)
from .roles import RolePolicy

__all__ = [
    "AllowAll",
    "DenyAll",
    "Grant",
    "HasPermission",
    "HasRole",
    "IsAuthenticated",
    "IsOwner",
    "ObjectHooks",
    "PermissionSet",
    "Policy",
    "RolePolicy",
    "check_object",
    "parse_grant",
]
