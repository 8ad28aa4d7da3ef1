"""Trusted issuers without a provider process: the claim maps and presets, the keys of a
JWKS document, the keys' state machine, and the verifier's refusals, against keys made
here and a JWKS served by a real HTTP server on loopback (stdlib's).  The end-to-end
tests against a real OpenID provider are in tests/test_oidc.py."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from authgate import Gate, require_role
from authgate.errors import (
    BadCredentials,
    ConfigError,
    ExpiredToken,
    InvalidSignature,
    InvalidTokenClaims,
    ProviderUnavailable,
    UnknownKey,
)
from authgate.issuers import (
    PRESETS,
    IssuerKeys,
    TrustedIssuer,
    keys_from_jwks,
    peek_issuer,
    read_claims,
)
from authgate.middleware.wsgi import AuthGateWSGIMiddleware
from authgate.permissions import RolePolicy
from authgate.testing import cheap_hasher, free_port

SECRET = "issuer-tests-secret-Pq4mW9zT2kR7xN5vB8cH3jL6"
POLICY = RolePolicy({"viewer": ["notes:read"], "operator": ["notes:write"], "admin": ["*:*"]})
AUDIENCE = "https://api.example.com"


class Provider:
    """Signing keys and the JWKS a stdlib HTTP server publishes for them: a provider
    reduced to what a resource server reads."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}
        self.algorithms: dict[str, str] = {}
        self.published: list[str] = []
        self.fetches = 0
        self.down = False
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}/realms/test"
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if provider.down:
                    self.send_response(503)
                    self.end_headers()
                    return
                if self.path.endswith("/.well-known/openid-configuration"):
                    body = {"issuer": provider.issuer, "jwks_uri": provider.issuer + "/certs"}
                elif self.path.endswith("/certs"):
                    provider.fetches += 1
                    body = provider.jwks()
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def add_key(self, kid: str, algorithm: str = "RS256", publish: bool = True) -> None:
        if algorithm.startswith("ES"):
            self.keys[kid] = ec.generate_private_key(ec.SECP256R1())
        else:
            self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.algorithms[kid] = algorithm
        if publish:
            self.published.append(kid)

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid in self.published:
            algorithm = jwt.get_algorithm_by_name(self.algorithms[kid])
            jwk = json.loads(algorithm.to_jwk(self.keys[kid].public_key()))
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": self.algorithms[kid]})
        return {"keys": keys}

    def token(self, kid: str, headers: dict[str, Any] | None = None, **claims: Any) -> str:
        now = int(time.time())
        body = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": "ada",
            "iat": now,
            "exp": now + 300,
            "preferred_username": "ada",
            "realm_access": {"roles": ["operator"]},
            **claims,
        }
        head = {"kid": kid, "typ": "at+jwt", **(headers or {})}
        return jwt.encode(body, self.keys[kid], algorithm=self.algorithms[kid], headers=head)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def provider() -> Iterator[Provider]:
    made = Provider()
    made.add_key("k1")
    yield made
    made.close()


def _gate(provider: Provider, **issuer: Any) -> Gate:
    return Gate(
        store="memory://",
        secret_key=SECRET,
        hasher=cheap_hasher(),
        policy=POLICY,
        trusted_issuers=[
            {"issuer": provider.issuer, "audiences": [AUDIENCE], "name": "kc",
             "preset": "keycloak", "refetch_cooldown": 0.2, **issuer}
        ],
    )  # fmt: skip


# -- claims --------------------------------------------------------------------------------


def test_each_preset_reads_its_providers_claims() -> None:
    keycloak = TrustedIssuer(
        "https://kc.example/realms/x", (AUDIENCE,), preset="keycloak", client_id="api"
    )
    found = read_claims(
        keycloak,
        {
            "sub": "5f0c-11",
            "preferred_username": "ada",
            "realm_access": {"roles": ["operator"]},
            "resource_access": {"api": {"roles": ["reports"]}, "other": {"roles": ["admin"]}},
            "groups": ["staff"],
        },
    )
    # The subject names the user: a preferred_username can change hands.
    assert found.username == "kc:5f0c-11" and found.roles == {"operator", "reports"}
    assert found.groups == {"staff"}
    auth0 = TrustedIssuer(
        "https://tenant.auth0.com/", (AUDIENCE,), preset="auth0", namespace="https://ex.com/"
    )
    found = read_claims(
        auth0,
        {
            "sub": "auth0|42",
            "permissions": ["notes:read"],
            "scope": "openid notes:write",
            "https://ex.com/roles": ["viewer"],
        },
    )
    assert found.username == "tenant:auth0|42" and found.roles == {"viewer"}
    assert found.permissions == {"notes:read", "openid", "notes:write"}
    cognito = TrustedIssuer("https://cognito-idp.eu.amazonaws.com/pool", (AUDIENCE,),
                            preset="cognito", name="pool")  # fmt: skip
    found = read_claims(cognito, {"sub": "9", "username": "bo", "cognito:groups": ["admin"]})
    assert found.username == "pool:9" and found.roles == {"admin"}
    entra = TrustedIssuer("https://login.microsoftonline.com/t/v2.0", (AUDIENCE,),
                          preset="entra", role_map={"Reports.Admin": "admin"})  # fmt: skip
    found = read_claims(
        entra, {"sub": "x", "oid": "o-1", "roles": ["Reports.Admin"], "scp": "Notes.Read"}
    )
    assert found.username == "login:o-1" and found.roles == {"admin"}
    assert found.permissions == {"Notes.Read"}
    assert set(PRESETS) == {"generic", "keycloak", "auth0", "cognito", "entra"}
    # A provider that pins its names may give them instead.
    pinned = TrustedIssuer("https://kc.example/realms/x", (AUDIENCE,), preset="keycloak",
                           username_claims=("preferred_username",))  # fmt: skip
    assert read_claims(pinned, {"sub": "1", "preferred_username": "ada"}).username == "kc:ada"
    for odd in ("ada lovelace", "ada\nuser=root", "ada\x00"):
        with pytest.raises(InvalidTokenClaims, match="spaces or control"):
            read_claims(pinned, {"sub": "1", "preferred_username": odd})


def test_no_username_claim_is_a_refusal_and_odd_claims_grant_nothing() -> None:
    generic = TrustedIssuer("https://idp.example", (AUDIENCE,))
    with pytest.raises(InvalidTokenClaims):
        read_claims(generic, {"roles": ["admin"]})
    found = read_claims(generic, {"sub": "s", "roles": "admin", "groups": [1, None, "g"]})
    assert found.roles == {"admin"} and found.groups == {"g"}  # a string is split, junk dropped
    assert read_claims(generic, {"sub": "s", "roles": {"admin": True}}).roles == frozenset()


def test_external_names_never_collide_with_local_ones_unless_asked() -> None:
    prefixed = TrustedIssuer("https://idp.example", (AUDIENCE,), name="idp")
    assert read_claims(prefixed, {"sub": "root"}).username == "idp:root"
    merged = TrustedIssuer("https://idp.example", (AUDIENCE,), username_prefix="")
    assert read_claims(merged, {"sub": "root"}).username == "root"


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"issuer": "", "audiences": [AUDIENCE]}, "exact 'issuer'"),
        ({"issuer": "https://i", "audiences": []}, "audiences"),
        ({"issuer": "https://i", "audiences": [AUDIENCE], "algorithms": ["HS256"]}, "asymmetric"),
        ({"issuer": "https://i", "audiences": [AUDIENCE], "algorithms": ["none"]}, "asymmetric"),
        ({"issuer": "https://i", "audiences": [AUDIENCE], "preset": "okta"}, "unknown preset"),
        ({"issuer": "https://i", "audiences": [AUDIENCE], "jwks_uri": "file:///x"}, "http(s)"),
        ({"issuer": "https://i", "audiences": [AUDIENCE], "colour": "red"}, "colour"),
    ],
)
def test_a_bad_issuer_configuration_is_refused(settings: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        Gate(store="memory://", secret_key=SECRET, trusted_issuers=[settings])


def test_issuers_come_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    from authgate import Settings

    monkeypatch.setenv(
        "AUTHGATE_TRUSTED_ISSUERS",
        json.dumps([{"issuer": "https://a.example", "audience": AUDIENCE, "preset": "auth0"}]),
    )
    (issuer,) = Settings.from_env().trusted_issuers
    assert issuer.audiences == (AUDIENCE,) and issuer.preset == "auth0" and issuer.name == "a"
    monkeypatch.setenv("AUTHGATE_TRUSTED_ISSUERS", "not json")
    with pytest.raises(ConfigError, match="JSON array"):
        Settings.from_env()


def test_peeking_reads_the_claimed_issuer_or_nothing() -> None:
    token = jwt.encode({"iss": "https://x"}, "k" * 32, algorithm="HS256")
    assert peek_issuer(token) == "https://x"
    assert peek_issuer("a.b.c") is None and peek_issuer("nope") is None
    number = base64.urlsafe_b64encode(b'{"iss": 7}').rstrip(b"=").decode()
    assert peek_issuer(f"e30.{number}.") is None


# -- keys -----------------------------------------------------------------------------------


def test_a_jwks_gives_the_signature_keys_of_the_allowed_algorithms(provider: Provider) -> None:
    provider.add_key("e1", "ES256")
    document = provider.jwks()
    document["keys"] += [
        {**document["keys"][0], "kid": "enc", "use": "enc"},  # an encryption key
        {**document["keys"][0], "kid": ""},  # no kid
        {"kty": "RSA", "kid": "junk", "n": "!!", "e": "AQAB"},  # does not parse
        {**document["keys"][1], "kid": "hs", "alg": "HS256"},  # not an allowed algorithm
    ]
    kept = keys_from_jwks(document, ("RS256", "ES256"))
    assert [(k.kid, k.algorithm) for k in kept] == [("k1", "RS256"), ("e1", "ES256")]
    assert [k.kid for k in keys_from_jwks(document, ("ES256",))] == ["e1"]
    with pytest.raises(ValueError, match="JWKS"):
        keys_from_jwks({"nokeys": []}, ("RS256",))


def test_the_keys_state_machine_refreshes_backs_off_and_expires() -> None:
    issuer = TrustedIssuer("https://i.example", (AUDIENCE,), refresh_interval=60,
                           keys_max_age=600, refetch_cooldown=30)  # fmt: skip
    keys = IssuerKeys(issuer)
    assert keys.due(0) and not keys.usable(0)
    provider = Provider()
    try:
        keys.attempt(100)
        assert keys.fetched(provider_jwks(provider), 100) is True
        assert keys.fetched(provider_jwks(provider), 101) is False  # the same keys
        assert keys.usable(650) and not keys.usable(701)
        assert not keys.due(150) and keys.due(161)
        assert not keys.may_refetch(120) and keys.may_refetch(131)
        keys.failed("unreachable", 161)
        assert keys.failures == 1 and keys.due(163) and not keys.due(162.5)  # backoff 2 s
        with pytest.raises(ValueError, match="no key usable"):
            keys.fetched({"keys": []}, 170)
    finally:
        provider.close()


def provider_jwks(provider: Provider) -> dict[str, Any]:
    if not provider.keys:
        provider.add_key("k1")
    return provider.jwks()


# -- the gate ----------------------------------------------------------------------------------


def test_a_providers_token_is_an_identity_with_its_roles(provider: Provider) -> None:
    gate = _gate(provider)
    try:
        identity = gate.authenticate(provider.token("k1"))
        assert identity.username == "kc:ada" and identity.roles == {"operator"}
        assert identity.can("notes:write") and not identity.can("users:delete")
        assert identity.user_id == "kc|ada" and identity.session_id == ""
        local = gate.create_user("ada", "ada password 1")  # a local ada is someone else
        assert local.username == "ada" != identity.username
    finally:
        gate.close()


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ({"claims": {"iss": "https://evil.example"}}, "not trusted"),
        ({"claims": {"aud": "https://other-api.example"}}, "wrong audience"),
        ({"from_now": {"exp": -100}}, "expired"),  # seconds from when the test runs
        ({"from_now": {"nbf": 300}}, "not yet valid"),
        ({"from_now": {"iat": 300}}, "issued in the future"),
        ({"claims": {"sub": ""}}, "sub claim"),
        ({"headers": {"typ": "id_token+jwt"}}, "type"),
        ({"headers": {"kid": "forged"}}, "key"),
        ({"headers": {"jku": "http://evil.example/jwks"}, "kid": "evil"}, "key"),
        ({"alg": "HS256"}, "algorithm"),
    ],
)
def test_a_bad_token_is_a_401_invalid_token(
    provider: Provider, change: dict[str, Any], refusal: str
) -> None:
    gate = _gate(provider)
    app = AuthGateWSGIMiddleware(_notes, gate)
    if change.get("kid") == "evil":  # signed by a key the provider never published
        provider.add_key("evil", publish=False)
    if change.get("alg") == "HS256":  # the public key, which anyone has, as an HMAC secret
        from cryptography.hazmat.primitives import serialization

        pem = (
            provider.keys["k1"]
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        head, body, _ = provider.token("k1").split(".")
        signature = hmac.new(pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
        forged_head = (
            base64.urlsafe_b64encode(
                json.dumps({"alg": "HS256", "kid": "k1", "typ": "at+jwt"}).encode()
            )
            .rstrip(b"=")
            .decode()
        )
        signature = hmac.new(pem, f"{forged_head}.{body}".encode(), hashlib.sha256).digest()
        token = f"{forged_head}.{body}." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()
    else:
        kid = change.get("kid", "k1")
        claims = dict(change.get("claims", {}))
        claims.update({k: int(time.time()) + v for k, v in change.get("from_now", {}).items()})
        token = provider.token(kid, change.get("headers"), **claims)
    try:
        with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://t") as web:
            answer = web.get("/notes", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401, answer.text
        assert answer.headers["www-authenticate"].startswith(
            'Bearer realm="authgate", error="invalid_token"'
        )
        assert refusal in answer.json()["detail"]
    finally:
        gate.close()


def test_a_new_key_at_the_provider_is_fetched_once_and_forged_kids_cause_no_storm(
    provider: Provider,
) -> None:
    gate = _gate(provider)
    try:
        gate.authenticate(provider.token("k1"))
        before = provider.fetches
        for _ in range(20):  # forged kids, in a burst: at most one fetch per cooldown
            with pytest.raises(UnknownKey):
                gate.authenticate(provider.token("k1", {"kid": "forged-" + str(_)}))
        assert provider.fetches - before <= 1
        provider.add_key("k2", "ES256")  # the provider rotates
        time.sleep(0.25)  # the cooldown
        assert gate.authenticate(provider.token("k2")).username == "kc:ada"
        assert gate.authenticate(provider.token("k1")).username == "kc:ada"  # both served
    finally:
        gate.close()


def test_an_unreachable_provider_keeps_its_keys_until_they_expire_then_503(
    provider: Provider,
) -> None:
    gate = _gate(provider, keys_max_age=1.0, refresh_interval=0.2)
    app = AuthGateWSGIMiddleware(_notes, gate)
    try:
        token = provider.token("k1")
        assert gate.authenticate(token).username == "kc:ada"
        provider.down = True
        assert gate.authenticate(provider.token("k1")).username == "kc:ada"  # cached keys
        time.sleep(1.3)
        with pytest.raises(ProviderUnavailable) as down:
            gate.authenticate(provider.token("k1"))
        assert "127.0.0.1" not in down.value.detail
        with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://t") as web:
            answer = web.get("/notes", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 503 and int(answer.headers["retry-after"]) >= 1
        assert answer.json()["error"] == "provider_unavailable"
        provider.down = False
        time.sleep(0.5)  # the background refresher gets the keys again
        assert gate.authenticate(provider.token("k1")).username == "kc:ada"
    finally:
        gate.close()


def test_local_and_external_tokens_side_by_side(provider: Provider) -> None:
    gate = _gate(provider)
    gate.create_user("olga", "olga password 1", roles=["admin"])
    app = AuthGateWSGIMiddleware(_notes, gate, api=True)
    try:
        with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://t") as web:
            local = web.post(
                "/auth/login", json={"username": "olga", "password": "olga password 1"}
            )
            mine = {"Authorization": f"Bearer {local.json()['access_token']}"}
            theirs = {"Authorization": f"Bearer {provider.token('k1')}"}
            assert web.get("/notes", headers=mine).json() == {"user": "olga"}
            assert web.get("/notes", headers=theirs).json() == {"user": "kc:ada"}
            viewer = provider.token("k1", realm_access={"roles": ["viewer"]})
            refused = web.get("/notes", headers={"Authorization": f"Bearer {viewer}"})
            assert refused.status_code == 403
    finally:
        gate.close()


@require_role("operator")
def _guarded() -> str:
    from authgate import current_identity

    return current_identity.username


def _notes(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    from authgate.errors import AuthGateError
    from authgate.http import error_response

    try:
        body = json.dumps({"user": _guarded()}).encode()
    except AuthGateError as err:
        answer = error_response(err)
        start_response(f"{answer.status} X", answer.headers)
        return [answer.body]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def test_expired_and_forged_signatures_raise_the_token_errors(provider: Provider) -> None:
    gate = _gate(provider)
    try:
        with pytest.raises(ExpiredToken):
            gate.authenticate(provider.token("k1", exp=int(time.time()) - 60))
        token = provider.token("k1")
        head, body, _ = token.split(".")
        with pytest.raises(InvalidSignature):
            gate.authenticate(f"{head}.{body}.{'A' * 342}")
    finally:
        gate.close()


def test_local_users_for_a_providers_tokens_add_local_rights_and_revocation(
    provider: Provider,
) -> None:
    gate = _gate(provider, local_users=True)
    try:
        first = gate.authenticate(provider.token("k1"))
        assert first.username == "ada" and first.roles == {"operator"}  # made at first sight
        local = gate.store.get_user("ada")
        assert local is not None and local.id == first.user_id and not local.password_hash
        gate.update_user("ada", groups=["auditors"], permissions=["reports:read"])
        again = gate.authenticate(provider.token("k1"))
        assert again.groups == {"auditors"} and again.can("reports:read")
        assert again.can("notes:write")  # the token's role still counts
        gate.update_user("ada", enabled=False)
        with pytest.raises(BadCredentials):
            gate.authenticate(provider.token("k1"))
        other = gate.create_user("bob", "bob password 12")  # a local bob...
        token = provider.token("k1", sub="b0b", preferred_username="bob")
        assert gate.authenticate(token).username != other.username  # ...is not the token's
    finally:
        gate.close()


# -- what a review found -------------------------------------------------------------------


def test_a_token_verified_while_the_keys_rotate_is_not_remembered_past_them(
    provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A verification under the old keys that ends after a rotation leaves nothing in
    the caches the new keys use: the token is checked again, and refused."""
    from authgate.issuers import ExternalVerifier
    from authgate.tokens import KeyRing

    gate = _gate(provider)
    try:
        state = next(iter(gate.issuers))
        old_ring = state.keys.ring
        assert old_ring is not None
        provider.add_key("k2")
        new_ring = KeyRing(keys_from_jwks({"keys": provider.jwks()["keys"][1:]}, ("RS256",)),
                           verify_only=True)  # fmt: skip
        original = ExternalVerifier._verify_uncached

        def rotating(self: ExternalVerifier, token: str, now: float) -> Any:
            claims = original(self, token, now)
            self.ring = new_ring  # the refresher swapped the keys meanwhile
            return claims

        monkeypatch.setattr(ExternalVerifier, "_verify_uncached", rotating)
        token = provider.token("k1")
        gate.authenticate(token)  # verified under the old keys, in flight
        monkeypatch.setattr(ExternalVerifier, "_verify_uncached", original)
        assert state.verifier is not None and not state.verifier.remembers(token)
        with pytest.raises(UnknownKey):  # k1 is gone from the keys now in use
            state.verifier.verify(token)
    finally:
        gate.close()


def test_a_deeply_nested_token_is_a_401_not_a_500(provider: Provider) -> None:
    from authgate.errors import InvalidToken

    gate = _gate(provider)
    try:
        nested = base64.urlsafe_b64encode(b"[" * 3000).rstrip(b"=").decode()
        with pytest.raises(InvalidToken):
            gate.authenticate(f"eyJhbGciOiJSUzI1NiJ9.{nested}.c2ln")
    finally:
        gate.close()


def test_keys_that_cannot_be_had_cost_one_fetch_per_cooldown(provider: Provider) -> None:
    provider.down = True
    gate = _gate(provider, refetch_cooldown=30)  # its first fetch, at start, fails
    try:
        fetched = provider.fetches
        for n in range(20):  # tokens claiming the issuer, forged or not
            with pytest.raises(ProviderUnavailable):
                gate.authenticate(provider.token("k1", {"kid": f"x{n}"}))
        assert provider.fetches == fetched  # none: the cooldown runs from the start's
    finally:
        gate.close()


def test_a_peer_that_is_no_http_server_is_a_failed_fetch_not_a_500() -> None:
    import socket

    from authgate.flows.drive import FetchFailed, fetch_json
    from authgate.flows.ops import Fetch

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def garbage() -> None:
        conn, _ = server.accept()
        conn.recv(1024)
        conn.sendall(b"SSH-2.0-OpenSSH\r\n\r\n")
        conn.close()

    threading.Thread(target=garbage, daemon=True).start()
    try:
        with pytest.raises(FetchFailed):
            fetch_json(Fetch(f"http://127.0.0.1:{server.getsockname()[1]}/certs", timeout=5))
    finally:
        server.close()


def test_a_long_lived_connection_rechecks_an_external_identity_as_one(provider: Provider) -> None:
    from authgate.errors import SessionRevoked

    gate = _gate(provider, leeway=0)
    try:
        short = gate.authenticate(provider.token("k1", exp=int(time.time()) + 2))
        assert gate.recheck(short).username == "kc:ada"  # not read as authgate's claims
        time.sleep(2.1)
        with pytest.raises(SessionRevoked):
            gate.recheck(short)
    finally:
        gate.close()


def test_a_verified_address_links_to_the_local_user_of_that_login_name(
    provider: Provider,
) -> None:
    gate = _gate(provider, local_users=True, link_verified_email=True)
    try:
        gate.create_user("kim@example.com", "kim password 1", email="kim@example.com",
                         email_verified=True, roles=["admin"])  # fmt: skip
        gate.create_user("lee@example.com", "lee password 1", email="lee@example.com")
        kim = provider.token("k1", sub="k-1", email="kim@example.com", email_verified=True)
        assert gate.authenticate(kim).username == "kim@example.com"
        # Unverified on either side: no link (a new local user instead).
        lee = provider.token("k1", sub="l-1", email="lee@example.com", email_verified=True)
        assert gate.authenticate(lee).username != "lee@example.com"
        unverified = provider.token("k1", sub="k-2", email="kim@example.com")
        assert gate.authenticate(unverified).username != "kim@example.com"
    finally:
        gate.close()
