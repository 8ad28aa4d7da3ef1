"""AMSDAL's auth plugin in authgate: ``Model:action`` permissions enforced once
registered (JSON fixtures), class / object hooks, and ``require_auth`` on a transaction.
Run: ``python examples/from_amsdal.py``."""

from __future__ import annotations

import json
import secrets
import tempfile
from pathlib import Path

from authgate import Gate, PermissionDenied, as_identity, check_object, require_auth
from authgate.registry import PermissionRegistry
from authgate.testing import cheap_hasher


class Report:
    """A model with AMSDAL's hooks."""

    def __init__(self, owner: str) -> None:
        self.owner = owner

    @classmethod
    def has_permission(cls, user: object, action: str) -> bool:
        return action != "create" or getattr(user, "email", "") == "admin@example.com"

    def has_object_permission(self, user: object, action: str) -> bool:
        return action == "read" or getattr(user, "username", "") == self.owner


@require_auth
def transaction_require_auth(dummy_int: int) -> int:
    return dummy_int * 2


def main() -> None:
    fixture = Path(tempfile.mkdtemp()) / "permissions.json"
    fixture.write_text(json.dumps({"Permission": [{"model": "User", "action": "create"}]}))
    registry = PermissionRegistry.from_fixture(fixture)
    gate = Gate(store="memory://", hasher=cheap_hasher(), secret_key=secrets.token_urlsafe(48))
    gate.create_user(
        "clerk", "clerk password", email="clerk@example.com", permissions=["Report:read"]
    )
    clerk = gate.authenticate(gate.login("clerk", "clerk password").access_token)
    print("User:read (not registered):", registry.allows(clerk, "User", "read"))
    print("User:create (registered):", registry.allows(clerk, "User", "create"))
    print("read own report:", check_object(clerk, Report("clerk"), "read"))
    print("update another's:", check_object(clerk, Report("boss"), "update"))
    with as_identity(clerk):
        print("transaction:", transaction_require_auth(21))
    try:
        transaction_require_auth(1)
    except PermissionDenied:
        print("refused")
    except Exception as err:  # NotAuthenticated, outside any identity
        print("outside a request:", type(err).__name__)


if __name__ == "__main__":
    main()
