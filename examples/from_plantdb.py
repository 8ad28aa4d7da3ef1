"""PlantDB's auth in authgate: a JSON-file store, a guest, lock-out, a session limit,
refresh, and owner / shared-group access.  Run: ``python examples/from_plantdb.py``."""

from __future__ import annotations

import contextlib
import secrets
import tempfile

from authgate import AccountLocked, BadCredentials, Gate, HasRole, IsOwner
from authgate.testing import cheap_hasher


def main() -> None:
    directory = tempfile.mkdtemp()
    gate = Gate(
        store=f"json:///{directory}",
        hasher=cheap_hasher(),
        secret_key=secrets.token_urlsafe(48),
        superuser_username="admin",
        superuser_password="admin password",
        guest_username="guest",
        max_login_attempts=3,
        max_sessions=2,
    )
    gate.ensure_superuser()  # also creates the guest on first run
    print("guest:", sorted(gate.store.get_user("guest").roles))  # type: ignore[union-attr]
    gate.create_user("ana", "ana password", groups=["lab"])
    for _ in range(3):
        with contextlib.suppress(BadCredentials):
            gate.login("ana", "wrong guess")
    try:
        gate.login("ana", "ana password")
    except AccountLocked as err:
        print("locked for", err.retry_after, "s")
    gate.unlock("ana")
    pairs = [gate.login("ana", "ana password") for _ in range(3)]
    print("sessions kept:", len(gate.list_sessions("ana")))
    fresh = gate.refresh(pairs[-1].refresh_token)
    who = gate.authenticate(fresh.access_token)
    scan = {"owner": "bob", "shared_with": ["lab"]}
    rule = HasRole("admin") | IsOwner()
    print("shared scan:", rule.allows_object(who, scan))
    print("files:", sorted(p for p in __import__("os").listdir(directory) if p.endswith(".json")))


if __name__ == "__main__":
    main()
