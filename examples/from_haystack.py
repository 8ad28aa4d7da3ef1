"""haystack-py's concepts in authgate: ordered roles, a users API, SCRAM and
``BEARER authToken=``.  Run: ``python examples/from_haystack.py``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

import webtest

from authgate import DEFAULT_ROLES, Gate
from authgate.middleware.wsgi import AuthGateWSGIApi, AuthGateWSGIMiddleware
from authgate.testing import cheap_hasher


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def scram_login(app: webtest.TestApp, username: str, password: str) -> str:
    """A Haystack client's SCRAM-SHA-256 handshake against GET /auth/scram."""

    def ask(header: str) -> webtest.TestResponse:
        return app.get("/auth/scram", headers={"Authorization": header}, status="*")

    def fields(header: str) -> dict[str, str]:
        return dict(re.findall(r"(\w+)=([^,\s]+)", header))

    hello = ask(f"HELLO username={b64url(username.encode())}")
    token = fields(hello.headers["WWW-Authenticate"])["handshakeToken"]
    bare = f"n={username},r={b64url(secrets.token_bytes(18))}"
    first = ask(f"SCRAM handshakeToken={token}, data={b64url(('n,,' + bare).encode())}")
    server_first = unb64url(fields(first.headers["WWW-Authenticate"])["data"]).decode()
    attrs = dict(part.split("=", 1) for part in server_first.split(","))
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"])
    )
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    without_proof = f"c=biws,r={attrs['r']}"
    message = f"{bare},{server_first},{without_proof}".encode()
    signature = hmac.new(hashlib.sha256(client_key).digest(), message, hashlib.sha256).digest()
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature, strict=True)))
    final = ask(
        f"SCRAM handshakeToken={token}, data={b64url(without_proof.encode() + b',p=' + proof)}"
    )
    return fields(final.headers["Authentication-Info"])["authToken"]


def main() -> None:
    print(
        "admin > operator > viewer:",
        DEFAULT_ROLES["admin"] > DEFAULT_ROLES["operator"] > DEFAULT_ROLES["viewer"],
    )
    gate = Gate(
        store="memory://",
        hasher=cheap_hasher(),
        secret_key=secrets.token_urlsafe(48),
        superuser_username="admin",
        superuser_password="supersecret",
    )
    gate.ensure_superuser()  # haystack's ensure_superuser(), from AUTHGATE_SUPERUSER_*
    app = webtest.TestApp(AuthGateWSGIMiddleware(AuthGateWSGIApi(None, gate), gate))
    token = scram_login(app, "admin", "supersecret")
    auth = {"Authorization": f"BEARER authToken={token}"}
    made = app.post_json(
        "/api/users/",
        {"username": "operator", "password": "pass word", "role": "operator", "first_name": "Jane"},
        headers=auth,
    )
    print("created:", made.json["username"], made.json["role"])
    refused = app.delete("/api/users/admin", headers=auth, status=409)
    print("delete yourself:", refused.status_code)


if __name__ == "__main__":
    main()
