"""Registered permissions: a ``Model:action`` is enforced only once it is registered
(AMSDAL's model), or always with ``require_by_default``.

========================  ======================  ===================================
the user's grants         registered               the user may
========================  ======================  ===================================
(none)                    ``Model:create``        read, update, delete; not create
(none)                    ``Model:*``             everything (``*`` registrations are
                                                   ignored)
``Model:create``          ``Model:create``        everything
``Model:create``          ``Model:create``,       create, update, delete; not read
                          ``Model:read``
``*:*``                   ``Model:create``        everything
``Model:*``               ``Model:create``        everything
========================  ======================  ===================================

The user's side is matched with authgate's grants (`authgate.permissions`), so ``*:*``
and ``Model:*`` cover the specific permissions.  Registrations load from code or from
AMSDAL-style JSON fixtures (``{"Permission": [{"model": "User", "action": "create"}]}``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import documents
from .errors import ConfigError, NotAuthenticated, PermissionDenied, ValidationError
from .identity import Identity
from .permissions import Policy, parse_grant

__all__ = ["PermissionRegistry", "RequiresRegistered"]


class PermissionRegistry:
    """The set of registered ``Model:action`` permissions."""

    def __init__(
        self, permissions: Iterable[str] = (), *, require_by_default: bool = False
    ) -> None:
        self.require_by_default = require_by_default
        self._registered: set[str] = set()
        for permission in permissions:
            self.register(permission)

    def __repr__(self) -> str:
        return (
            f"PermissionRegistry({sorted(self._registered)!r}, "
            f"require_by_default={self.require_by_default})"
        )

    def __contains__(self, permission: object) -> bool:
        return permission in self._registered

    def register(self, permission: str) -> None:
        """Register ``Model:action`` (validated); wildcard registrations are kept but, as
        in AMSDAL, never make anything required."""
        parse_grant(permission)
        self._registered.add(permission)

    def unregister(self, permission: str) -> None:
        """Lift a requirement."""
        self._registered.discard(permission)

    @classmethod
    def from_fixture(
        cls, path: str | Path, *, require_by_default: bool = False
    ) -> PermissionRegistry:
        """Load an AMSDAL-style JSON fixture: ``{"Permission": [{"model", "action"}]}``
        (a bare list of those objects works too)."""
        try:
            data: Any = documents.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ConfigError(f"cannot read the permission fixture {path}: {err}") from err
        entries = data.get("Permission") if isinstance(data, dict) else data
        if not isinstance(entries, list):
            raise ConfigError(f"{path}: expected a 'Permission' list")
        registry = cls(require_by_default=require_by_default)
        for number, entry in enumerate(entries):
            if not (
                isinstance(entry, dict)
                and isinstance(entry.get("model"), str)
                and isinstance(entry.get("action"), str)
            ):
                raise ConfigError(f"{path}: entry {number} needs string 'model' and 'action'")
            try:
                registry.register(f"{entry['model']}:{entry['action']}")
            except ValidationError as err:
                raise ConfigError(f"{path}: entry {number}: {err.detail}") from err
        return registry

    def requires(self, model: str, action: str) -> bool:
        """Is ``model:action`` enforced?"""
        return self.require_by_default or f"{model}:{action}" in self._registered

    def allows(self, identity: Identity, model: str, action: str) -> bool:
        """May `identity` do `action` on `model`?"""
        if not self.requires(model, action):
            return True
        return identity.can(f"{model}:{action}")

    def check(self, identity: Identity, model: str, action: str) -> None:
        """Raise `PermissionDenied` (or `NotAuthenticated`) unless `allows`."""
        if self.allows(identity, model, action):
            return
        if not identity.is_authenticated:
            raise NotAuthenticated(f"authentication required: {model}:{action} is required")
        raise PermissionDenied(f"requires {model}:{action} permission")


class RequiresRegistered(Policy):
    """A `Policy` for one ``model:action`` under a registry (for decorators)."""

    def __init__(self, registry: PermissionRegistry, model: str, action: str) -> None:
        self.registry = registry
        self.model = model
        self.action = action

    def allows(self, identity: Identity) -> bool:
        return self.registry.allows(identity, self.model, self.action)

    def describe(self) -> str:
        return f"{self.model}:{self.action} permission"
