"""The SCRAM final step attacked piece by piece: every check between the client's proof
and a session, each of which a one-line change could drop (found by mutation testing,
docs/mutation.md).  The client follows RFC 5802 / 7677, written from the RFCs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from typing import Any

import pytest

from authgate.api import ApiRequest, ApiResponse, HttpApi
from authgate.errors import AccountLocked
from authgate.gate import Gate
from authgate.identity import ANONYMOUS, Client
from authgate.testing import cheap_hasher
from conftest import SECRET

PW = "pencil and paper"


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def challenge(response: ApiResponse) -> dict[str, str]:
    header = dict(response.headers)["www-authenticate"]
    return dict(re.findall(r"(\w+)=([^,\s]+)", header.split(" ", 1)[1]))


@dataclass
class Handshake:
    """A handshake taken to the client-final step, with what the proof is made of."""

    gate: Gate
    token: str
    nonce: str
    bare: str
    server_first: str
    salted: bytes

    def proof(self, without_proof: str) -> bytes:
        client_key = hmac.new(self.salted, b"Client Key", hashlib.sha256).digest()
        stored_key = hashlib.sha256(client_key).digest()
        auth_message = f"{self.bare},{self.server_first},{without_proof}".encode()
        signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
        return bytes(a ^ b for a, b in zip(client_key, signature, strict=True))

    def final(
        self,
        *,
        channel: str = "biws",
        nonce: str | None = None,
        proof: bytes | None = None,
        proof_text: str | None = None,
    ) -> ApiResponse:
        without_proof = f"c={channel},r={self.nonce if nonce is None else nonce}"
        text = (
            proof_text
            or base64.b64encode(self.proof(without_proof) if proof is None else proof).decode()
        )
        data = b64url(f"{without_proof},p={text}".encode())
        return scram(self.gate, f"SCRAM handshakeToken={self.token}, data={data}")


def scram(gate: Gate, authorization: str) -> ApiResponse:
    request = ApiRequest(
        "GET", "/auth/scram", ANONYMOUS, authorization=authorization, client=Client("198.51.100.4")
    )
    response = gate.run(HttpApi.for_gate(gate).answer(request))
    assert response is not None
    return response


def start(gate: Gate, username: str = "alice", password: str = PW) -> Handshake:
    hello = scram(gate, f"HELLO username={b64url(username.encode())}")
    token = challenge(hello)["handshakeToken"]
    client_nonce = b64url(secrets.token_bytes(18))
    bare = f"n={username},r={client_nonce}"
    first = scram(gate, f"SCRAM handshakeToken={token}, data={b64url(('n,,' + bare).encode())}")
    server_first = unb64url(challenge(first)["data"]).decode()
    attrs = dict(part.split("=", 1) for part in server_first.split(","))
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"])
    )
    return Handshake(gate, token, attrs["r"], bare, server_first, salted)


@pytest.fixture
def gate() -> Gate:
    g = Gate(store="memory://", hasher=cheap_hasher(), secret_key=SECRET, max_login_attempts=3)
    g.create_user("alice", PW, roles=["operator"])
    return g


def refused(response: ApiResponse) -> bool:
    return response.status == 401 and "authentication-info" not in dict(response.headers)


def test_the_right_proof_logs_in_and_the_server_proves_itself(gate: Gate) -> None:
    shake = start(gate)
    done = shake.final()
    assert (done.status, done.body) == (200, b"")
    assert [name for name, _ in done.headers] == ["authentication-info", "cache-control"]
    assert dict(done.headers)["cache-control"] == "no-store"
    (name, value) = next(h for h in done.headers if h[0] == "authentication-info")
    assert name == "authentication-info"  # ASGI header names are lower case
    token = re.search(r"authToken=([^,\s]+)", value)
    assert token is not None
    assert gate.authenticate(token.group(1)).username == "alice"


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_a_proof_of_the_wrong_length_is_refused(gate: Gate, size: int) -> None:
    """Not 32 bytes: never compared, never accepted (the check must start from "no")."""
    assert refused(start(gate).final(proof=b"\x00" * size))


def test_a_proof_for_another_nonce_is_refused(gate: Gate) -> None:
    shake = start(gate)
    other = shake.nonce[:-4] + "AAAA"
    assert refused(shake.final(nonce=other))


def test_a_proof_with_channel_binding_is_refused(gate: Gate) -> None:
    """Channel binding is not offered: ``c`` other than ``biws`` ("n,,") fails even with a
    proof computed over it."""
    assert refused(start(gate).final(channel=base64.b64encode(b"y,,").decode()))


def test_a_proof_with_stray_characters_is_refused(gate: Gate) -> None:
    """base64 decoded strictly: junk in the proof (which a lax decoder skips) is refused."""
    shake = start(gate)
    good = base64.b64encode(shake.proof(f"c=biws,r={shake.nonce}")).decode()
    assert refused(shake.final(proof_text=good[:10] + "!*" + good[10:]))


def test_a_disabled_user_with_the_right_proof_is_refused(gate: Gate) -> None:
    shake = start(gate)
    gate.update_user("alice", enabled=False)
    assert refused(shake.final())


def test_an_unknown_user_is_refused_at_the_proof(gate: Gate) -> None:
    assert refused(start(gate, "ghost").final())


def test_scram_failures_count_toward_the_lock_out_and_a_success_clears_them(
    gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="authgate.audit")
    for _ in range(2):
        assert refused(start(gate).final(proof=b"\x01" * 32))
    assert start(gate).final().status == 200  # a success clears the count
    for _ in range(3):
        assert refused(start(gate).final(proof=b"\x01" * 32))
    locked = start(gate).final()
    assert (locked.status, locked.data()["error"]) == (429, "account_locked")
    with pytest.raises(AccountLocked):
        gate.login("alice", PW)  # the same lock as password logins
    audit: list[Any] = [r.audit for r in caplog.records if hasattr(r, "audit")]
    failures = [a for a in audit if a["event"] == "login_failure"]
    assert len(failures) == 5
    assert all(
        (a["username"], a["client_ip"], a["detail"])
        == ("alice", "198.51.100.4", "SCRAM proof refused")
        for a in failures
    )
    success = [a for a in audit if a["event"] == "login_success"]
    assert [(a["username"], a["detail"]) for a in success] == [("alice", "SCRAM")]
    assert any(a["event"] == "lockout" and a["username"] == "alice" for a in audit)


# -- the client-first and HELLO steps ---------------------------------------------------------


def hello(gate: Gate, username: str = "alice") -> str:
    return challenge(scram(gate, f"HELLO username={b64url(username.encode())}"))["handshakeToken"]


def client_first(gate: Gate, token: str, bare: str) -> ApiResponse:
    return scram(gate, f"SCRAM handshakeToken={token}, data={b64url(('n,,' + bare).encode())}")


@pytest.mark.parametrize(("size", "ok"), [(15, False), (16, True), (256, True), (257, False)])
def test_the_client_nonce_is_16_to_256_characters(gate: Gate, size: int, ok: bool) -> None:
    reply = client_first(gate, hello(gate), f"n=alice,r={'N' * size}")
    assert reply.status == 401
    assert ("data" in challenge(reply)) is ok
    if not ok:
        assert reply.data()["detail"] == "client-first needs n=<user> and r=<nonce>"


@pytest.mark.parametrize("bare", ["r=" + "N" * 20, "n=alice", "n=alice,r="])
def test_the_client_first_must_name_the_user_and_a_nonce(gate: Gate, bare: str) -> None:
    reply = client_first(gate, hello(gate), bare)
    assert reply.data()["detail"] == "client-first needs n=<user> and r=<nonce>"


def test_the_client_first_must_name_the_user_of_the_hello(gate: Gate) -> None:
    gate.create_user("bob", PW)
    reply = client_first(gate, hello(gate, "alice"), f"n=bob,r={'N' * 20}")
    assert reply.data()["detail"] == "client-first names another user than HELLO"
    same = client_first(gate, hello(gate, "alice"), f"n=ALICE,r={'N' * 20}")
    assert "data" in challenge(same)  # the same name, normalised


def test_handshakes_per_user_are_limited_with_the_time_left(gate: Gate) -> None:
    from authgate.flows.scram import HANDSHAKES_PER_MINUTE, HELLO_WINDOW

    for _ in range(HANDSHAKES_PER_MINUTE):
        assert hello(gate)
    refused = scram(gate, f"HELLO username={b64url(b'alice')}")
    assert (refused.status, refused.data()["error"]) == (429, "account_locked")
    assert refused.data()["detail"] == "too many SCRAM handshakes; retry later"
    wait = int(dict(refused.headers)["retry-after"])
    assert HELLO_WINDOW - 5 <= wait <= HELLO_WINDOW
    assert hello(gate, "bob")  # per user: others still start


@pytest.mark.parametrize("username", ["%%%", b64url(b"ab"), b64url(b"\xff\xfe"), b64url(b"a b")])
def test_a_hello_without_a_valid_username_is_refused(gate: Gate, username: str) -> None:
    reply = scram(gate, f"HELLO username={username}")
    assert reply.status in (400, 401)
    assert reply.data()["detail"] == "HELLO needs username=<base64url of a valid username>"


# -- a second round (the full run of this session) ----------------------------------------


def detail(response: ApiResponse) -> str:
    return str(response.data()["detail"])


def test_base64url_values_go_out_without_padding() -> None:
    from authgate.flows import scram as engine

    assert [engine._b64url(raw) for raw in (b"a", b"ab", b"abc")] == ["YQ", "YWI", "YWJj"]
    assert engine._b64url(b"\x00\x00\x17") == "AAAX"  # only padding is stripped


def test_a_message_that_is_not_utf8_is_an_answer_not_a_crash(gate: Gate) -> None:
    """Bytes that are not UTF-8 are read with replacement characters: the step answers
    (here it goes on, the nonce being printable), it never raises."""
    hello = scram(gate, f"HELLO username={b64url(b'alice')}")
    token = challenge(hello)["handshakeToken"]
    data = b64url(b"n,,n=alice,r=" + bytes([0xFF]) * 20)
    answer = scram(gate, f"SCRAM handshakeToken={token}, data={data}")
    assert answer.status == 401 and "data" in challenge(answer)


@pytest.mark.parametrize(
    ("authorization", "said"),
    [
        ("HELLO realm=x", "HELLO needs username=<base64url of a valid username>"),
        ("SCRAM data=abcd", "a SCRAM message needs handshakeToken and data"),
        ("SCRAM handshakeToken=abcd", "a SCRAM message needs handshakeToken and data"),
    ],
    ids=["hello-without-username", "without-token", "without-data"],
)
def test_a_step_missing_a_parameter_is_refused_saying_which(
    gate: Gate, authorization: str, said: str
) -> None:
    answer = scram(gate, authorization)
    assert (answer.status, detail(answer)) == (401, said)


def test_a_client_nonce_may_hold_any_printable_character_but_a_comma(gate: Gate) -> None:
    """RFC 5802's nonce is printable ASCII but ","; an "=" inside it is part of it."""
    hello = scram(gate, f"HELLO username={b64url(b'alice')}")
    token = challenge(hello)["handshakeToken"]
    nonce = "abc=def=ghij+klm/nop"
    first = scram(
        gate, f"SCRAM handshakeToken={token}, data={b64url(f'n,,n=alice,r={nonce}'.encode())}"
    )
    server_first = unb64url(challenge(first)["data"]).decode()
    combined = server_first.split(",")[0].removeprefix("r=")
    assert combined.startswith(nonce)
    # The server adds 18 random bytes: 24 base64url characters.
    assert len(combined) == len(nonce) + 24


def test_a_final_message_without_a_nonce_is_refused(gate: Gate) -> None:
    shake = start(gate)
    data = b64url(b"c=biws,p=" + base64.b64encode(b"\x00" * 32))
    answer = scram(gate, f"SCRAM handshakeToken={shake.token}, data={data}")
    assert (answer.status, detail(answer)) == (
        401,
        "client-final has the wrong nonce or channel binding",
    )


def test_the_lockout_from_scram_failures_names_the_client(
    gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="authgate.audit")
    for _ in range(3):
        assert refused(start(gate).final(proof=b"\x01" * 32))
    audit = [getattr(r, "audit", {}) for r in caplog.records]
    locks = [a for a in audit if a.get("event") == "lockout"]
    assert [(a["username"], a["client_ip"]) for a in locks] == [("alice", "198.51.100.4")]


def test_too_many_handshakes_say_to_wait_at_least_a_second() -> None:
    """Stepped without I/O: the window's last half second still asks for one second."""
    from authgate.flows import Call
    from authgate.flows import scram as engine

    flow = engine._hello({"username": b64url(b"alice")})
    op = next(flow)
    assert isinstance(op, Call) and op.method == "incr"
    op = flow.send(engine.HANDSHAKES_PER_MINUTE + 1)
    assert isinstance(op, Call) and op.method == "counter_ttl"
    with pytest.raises(AccountLocked) as locked:
        flow.send(0.4)
    assert locked.value.retry_after == 1


def test_an_unknown_users_made_up_salt_looks_like_a_real_one(gate: Gate) -> None:
    """Made-up credentials differ per name and have a real salt's 16 bytes: neither a
    shared salt nor its length tells an unknown name from a user."""

    def salt_of(name: str) -> bytes:
        attrs = dict(p.split("=", 1) for p in start(gate, name).server_first.split(","))
        return base64.b64decode(attrs["s"])

    real, ghost, other = salt_of("alice"), salt_of("ghost"), salt_of("other")
    assert len(real) == len(ghost) == len(other) == 16
    assert ghost != other and salt_of("ghost") == ghost  # stable per name


def test_scram_credentials_are_derived_with_ten_thousand_iterations_by_default() -> None:
    from authgate.flows.scram import derive_credentials

    assert derive_credentials("pencil and paper").startswith("SCRAM-SHA-256$10000:")
