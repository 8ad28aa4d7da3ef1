"""Login, authenticate, refresh and logout with the sync `Gate` (WSGI apps, scripts).

Run it: ``python examples/sessions_sync.py``
"""

from __future__ import annotations

import secrets

from authgate import Client, Gate, SessionRevoked


def main() -> None:
    gate = Gate(store="memory://", secret_key=secrets.token_urlsafe(48))
    gate.create_user("alice", "correct horse battery", roles=["operator"])

    pair = gate.login("alice", "correct horse battery", Client("203.0.113.5", "example"))
    who = gate.authenticate(pair.access_token)
    print("authenticated:", who.username, sorted(who.roles))

    fresh = gate.refresh(pair.refresh_token)  # the old refresh token is now spent
    print("refreshed, same session:", fresh.session_id == pair.session_id)

    gate.logout(gate.authenticate(fresh.access_token))
    try:
        gate.authenticate(fresh.access_token)
    except SessionRevoked as err:
        print("after logout:", err.detail)
    gate.close()


if __name__ == "__main__":
    main()
