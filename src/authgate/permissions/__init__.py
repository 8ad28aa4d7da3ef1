"""Permissions: ``resource:action`` grants (`grants`), role policies (`roles`),
composable guards (`policies`), the models' hooks and filtered lists (`objects`)."""

from __future__ import annotations

from .grants import Grant, PermissionSet, parse_grant
from .objects import (
    ObjectHooks,
    afilter_objects,
    check_object,
    check_object_async,
    filter_objects,
)
from .policies import (
    AllowAll,
    DenyAll,
    HasPermission,
    HasRole,
    IsAuthenticated,
    IsOwner,
    Policy,
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
    "afilter_objects",
    "check_object",
    "check_object_async",
    "filter_objects",
    "parse_grant",
]
