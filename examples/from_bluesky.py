"""bluesky-httpserver's DictionaryAPIAccessControl in authgate.
Run: ``python examples/from_bluesky.py``."""

from __future__ import annotations

import secrets

from authgate import Gate
from authgate.static import StaticAccess, StaticUserStore
from authgate.stores import MemoryStore
from authgate.testing import cheap_hasher

CONFIG = {
    "users": {
        "bob": {"roles": ["admin", "expert"], "email": "bob@gmail.com"},
        "jdoe": {
            "roles": "advanced",
            "displayed_name": "Doe, John",
            "email": "jdoe@gmail.com",
            "password_hash": cheap_hasher().hash("jdoe password"),
        },
    },
    "roles": {"advanced": {"scopes_add": ["read:config"]}},
}


def main() -> None:
    access = StaticAccess.from_dict(CONFIG)
    print("known:", access.is_user_known("jdoe"), access.is_user_known("mallory"))
    print("roles:", sorted(access.get_user_roles("jdoe")))
    print("displayed:", access.get_displayed_user_name("jdoe"))
    print("can read config:", "read:config" in access.get_user_scopes("jdoe"))
    gate = Gate(
        store=StaticUserStore(access, MemoryStore()),
        hasher=cheap_hasher(),
        secret_key=secrets.token_urlsafe(48),
    )
    who = gate.authenticate(gate.login("jdoe", "jdoe password").access_token)
    print("logged in:", who.username, who.can("write:queue:edit"))
    print("nobody:", StaticAccess.from_dict({"users": None}).is_user_known("bob"))


if __name__ == "__main__":
    main()
