"""Iggy's users in authgate: global and per-stream/topic permissions, status, a root user
that cannot be deleted, password changes.  Run: ``python examples/from_iggy.py``."""

from __future__ import annotations

import json
import secrets

from authgate import Gate
from authgate.api import ApiRequest, HttpApi
from authgate.testing import cheap_hasher


def main() -> None:
    gate = Gate(
        store="memory://",
        hasher=cheap_hasher(),
        secret_key=secrets.token_urlsafe(48),
        superuser_username="iggy",
        superuser_password="iggy password",
        protect_root=True,
    )
    gate.ensure_superuser()
    root = gate.authenticate(gate.login("iggy", "iggy password").access_token)

    http_api = HttpApi.for_gate(gate)

    def api(method: str, path: str, body: object = None) -> tuple[int, object]:
        raw = json.dumps(body).encode() if body is not None else b""
        reply = gate.run(http_api.answer(ApiRequest(method, path, root, raw)))
        assert reply is not None
        return reply.status, reply.data()

    print(
        api(
            "POST",
            "/api/users/",
            {"username": "Producer", "password": "producer pass", "role": "viewer"},
        )[0]
    )
    api(
        "PUT",
        "/api/users/producer/permissions",
        {"permissions": ["streams:read", "streams/1:send", "streams/2/topics/7:send"]},
    )
    who = gate.authenticate(gate.login("producer", "producer pass").access_token)
    print("send to stream 1 topic 3:", who.can("streams/1/topics/3:send"))
    print("send to stream 2 topic 8:", who.can("streams/2/topics/8:send"))
    print("status:", api("PATCH", "/api/users/producer", {"status": "inactive"})[1]["status"])  # type: ignore[index]
    print("delete root:", api("DELETE", "/api/users/iggy")[0])
    print(
        "reset password:",
        api("PUT", "/api/users/producer/password", {"password": "new producer pw"})[0],
    )


if __name__ == "__main__":
    main()
