"""SCRAM-SHA-256 in Project Haystack's handshake, driven by a client written from the
published protocol (RFC 5802 / 7677 and the Haystack auth page), not from authgate's code."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from typing import Any

import pytest
import webtest

from authgate.gate import Gate
from authgate.middleware.wsgi import AuthGateWSGIApi, AuthGateWSGIMiddleware
from authgate.testing import cheap_hasher

PW = "pencil and paper"


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def params(header: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=([^,\s]+)", header.split(" ", 1)[1]))


class HaystackClient:
    """The client side of the handshake, step by step."""

    def __init__(self, app: webtest.TestApp) -> None:
        self.app = app

    def get(self, authorization: str, status: int | str = "*") -> Any:
        return self.app.get("/auth/scram", headers={"Authorization": authorization}, status=status)

    def login(self, username: str, password: str) -> tuple[Any, dict[str, str]]:
        hello = self.get(f"HELLO username={b64url(username.encode())}", 401)
        challenge = params(hello.headers["WWW-Authenticate"])
        assert challenge["hash"] == "SHA-256"
        token = challenge["handshakeToken"]
        client_nonce = b64url(secrets.token_bytes(18))
        bare = f"n={username},r={client_nonce}"
        first = self.get(
            f"SCRAM handshakeToken={token}, data={b64url(('n,,' + bare).encode())}", 401
        )
        server_first = unb64url(params(first.headers["WWW-Authenticate"])["data"]).decode()
        attrs = dict(part.split("=", 1) for part in server_first.split(","))
        assert attrs["r"].startswith(client_nonce)
        salt, iterations = base64.b64decode(attrs["s"]), int(attrs["i"])
        salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c=biws,r={attrs['r']}"
        auth_message = f"{bare},{server_first},{without_proof}".encode()
        signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
        proof = base64.b64encode(
            bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        ).decode()
        final = self.get(
            f"SCRAM handshakeToken={token}, data={b64url(f'{without_proof},p={proof}'.encode())}"
        )
        expected = {"salted": salted, "auth_message": auth_message}
        info = dict(re.findall(r"(\w+)=([^,\s]+)", final.headers.get("Authentication-Info", "")))
        return final, {
            **info,
            **{k: v.hex() for k, v in expected.items() if isinstance(v, bytes)},
        }


@pytest.fixture
def client() -> HaystackClient:
    gate = Gate(
        store="memory://",
        hasher=cheap_hasher(),
        secret_key="scram-test-secret-key-that-is-long-enough",
    )
    gate.create_user("alice", PW, roles=["operator"])
    app = AuthGateWSGIMiddleware(AuthGateWSGIApi(None, gate), gate)
    return HaystackClient(webtest.TestApp(app))


def test_whole_handshake_then_bearer_auth_token(client: HaystackClient) -> None:
    final, info = client.login("alice", PW)
    assert final.status_code == 200
    server_final = unb64url(info["data"]).decode()
    salted = bytes.fromhex(info["salted"])
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    expected = hmac.new(server_key, bytes.fromhex(info["auth_message"]), hashlib.sha256).digest()
    assert server_final == f"v={base64.b64encode(expected).decode()}"  # the server proves itself
    me = client.app.get(
        "/auth/me", headers={"Authorization": f"BEARER authToken={info['authToken']}"}
    )
    assert me.json["username"] == "alice"


def test_wrong_password_fails_at_the_proof(client: HaystackClient) -> None:
    final, _ = client.login("alice", "not the password")
    assert final.status_code == 401
    assert final.json["error"] == "invalid_credentials"
    assert "Authentication-Info" not in final.headers


def test_unknown_user_looks_like_a_known_one_until_the_proof(client: HaystackClient) -> None:
    def salt_and_iterations(user: str) -> tuple[str, str, str]:
        hello = client.get(f"HELLO username={b64url(user.encode())}", 401)
        token = params(hello.headers["WWW-Authenticate"])["handshakeToken"]
        nonce = b64url(secrets.token_bytes(18))
        first = client.get(
            f"SCRAM handshakeToken={token}, data={b64url(f'n,,n={user},r={nonce}'.encode())}", 401
        )
        attrs = dict(
            p.split("=", 1)
            for p in unb64url(params(first.headers["WWW-Authenticate"])["data"]).decode().split(",")
        )
        return attrs["s"], attrs["i"], hello.headers["WWW-Authenticate"].split(",")[0]

    ghost_a, ghost_b = salt_and_iterations("ghost"), salt_and_iterations("ghost")
    assert ghost_a == ghost_b  # a stable, deterministic fake salt
    real = salt_and_iterations("alice")
    assert real[1:] == ghost_a[1:] and len(real[0]) == len(ghost_a[0])
    final, _ = client.login("ghost", PW)
    assert final.status_code == 401


def test_a_handshake_token_serves_once_and_garbage_is_refused(client: HaystackClient) -> None:
    hello = client.get(f"HELLO username={b64url(b'alice')}", 401)
    token = params(hello.headers["WWW-Authenticate"])["handshakeToken"]
    data = b64url(b"n,,n=alice,r=" + b64url(secrets.token_bytes(18)).encode())
    client.get(f"SCRAM handshakeToken={token}, data={data}", 401)
    again = client.get(f"SCRAM handshakeToken={token}, data={data}", 401)
    assert again.json["error"] != "scram"
    for header in (
        "SCRAM handshakeToken=nope, data=abc",
        "HELLO username=%%%",
        "SCRAM",
        "HELLO",
        "Basic abc",
        f"SCRAM handshakeToken={token}",
    ):
        reply = client.get(header)
        assert reply.status_code in (400, 401), header
