"""Every parser of outside input, fuzzed: none may fail with anything but authgate's own
errors, and none of those may be a 5xx.

Seeded (``derandomize``): a run is repeatable.  ``AUTHGATE_FUZZ_EXAMPLES`` sets the
inputs per target (default 150); ``scripts/fuzz`` runs the same targets far longer and
prints how many inputs it fed.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authgate import documents
from authgate.api import ApiRequest, HttpApi
from authgate.errors import AuthGateError, ConfigError
from authgate.gate import Gate
from authgate.http import CredentialRules, parse_authorization, parse_cookies, read_credential
from authgate.identity import ANONYMOUS, Identity
from authgate.permissions import RolePolicy, parse_grant
from authgate.testing import cheap_hasher
from authgate.users import normalize_group_name, normalize_username
from conftest import SECRET

EXAMPLES = int(os.environ.get("AUTHGATE_FUZZ_EXAMPLES", "150"))
FED: Counter[str] = Counter()
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
PW = "correct horse battery"

# Nesting deep enough to exhaust the interpreter's stack.
NESTED = st.builds(
    lambda n, open_, close: open_ * n + close * (n // 2),
    st.sampled_from([1, 2, 31, 32, 33, 34, 64, 500, 999, 1000, 1001, 3000, 10000]),
    st.sampled_from(["[", '{"a":', "[{"]),
    st.sampled_from(["]", "}", ""]),
)
# Text as it arrives: any code point (lone surrogates too), bracket-heavy, token-shaped.
TEXT = st.one_of(
    NESTED,
    st.text(max_size=300),
    st.text(alphabet='[]{}",:0123456789.eE-+ \\tnulrfas', max_size=300),
    st.from_regex(
        r"[A-Za-z0-9_\-]{0,60}\.[A-Za-z0-9_\-]{0,60}\.[A-Za-z0-9_\-]{0,60}", fullmatch=True
    ),
)
JSON: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=30,
)
CLAIMS = ("iss", "aud", "sub", "sid", "jti", "ver", "iat", "nbf", "exp", "typ", "roles", "perms")
HEADER_KEYS = ("typ", "kid", "crit", "jku", "x5u")


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def signed(header: Any, payload: Any) -> str:
    """Signed with the gate's secret; a `str` is sent as it is, anything else as JSON."""
    parts = [v if isinstance(v, str) else json.dumps(v) for v in (header, payload)]
    text = f"{b64(parts[0].encode())}.{b64(parts[1].encode())}"
    mac = hmac.new(SECRET.encode(), text.encode(), hashlib.sha256).digest()
    return f"{text}.{b64(mac)}"


def refused_cleanly(err: AuthGateError) -> None:
    assert err.status < 500, f"{type(err).__name__} ({err.status}): {err.detail}"
    assert err.detail


@pytest.fixture(scope="module")
def gate() -> Iterator[Gate]:
    g = Gate(store="memory://", hasher=cheap_hasher(), secret_key=SECRET)
    g.create_user("alice", PW, roles=["admin"])
    g.create_user("bob", PW, roles=["viewer"])
    yield g
    g.close()


@pytest.fixture(scope="module")
def admin(gate: Gate) -> Identity:
    return gate.authenticate(gate.login("alice", PW).access_token)


@pytest.fixture(scope="module", autouse=True)
def count_fed() -> Iterator[None]:
    yield
    where = os.environ.get("AUTHGATE_FUZZ_COUNT_FILE")
    if where:
        with open(where, "a", encoding="utf-8") as out:
            for target, n in sorted(FED.items()):
                out.write(f"{target} {n}\n")


# -- headers and cookies -----------------------------------------------------------------------


@FUZZ
@given(
    value=TEXT
    | st.builds(
        lambda s, t: f"{s} {t}", st.sampled_from(["Bearer", "ApiKey", "BEARER authToken="]), TEXT
    )
)
def test_authorization_header(value: str) -> None:
    FED["authorization"] += 1
    try:
        token = parse_authorization(value)
    except AuthGateError as err:
        refused_cleanly(err)
    else:
        assert token is None or token in value


@FUZZ
@given(
    authorization=st.none() | TEXT,
    cookie=st.none()
    | TEXT
    | st.lists(st.sampled_from(["session=a", "session=b", "authgate_csrf=x", "y=1", "=", ";"])).map(
        "; ".join
    ),
    csrf=st.none() | TEXT,
    method=st.sampled_from(["GET", "POST", "DELETE", "OPTIONS"]),
    query=TEXT,
    websocket=st.booleans(),
    origin=st.none() | TEXT,
    host=TEXT,
)
def test_credential_reading(
    authorization: str | None,
    cookie: str | None,
    csrf: str | None,
    method: str,
    query: str,
    websocket: bool,
    origin: str | None,
    host: str,
) -> None:
    FED["credential"] += 1
    rules = CredentialRules(
        cookie_name="session", websocket_origins=frozenset({"https://app.example"})
    )
    try:
        read_credential(
            authorization=authorization,
            cookie=cookie,
            csrf=csrf,
            method=method,
            query=query,
            websocket=websocket,
            rules=rules,
            origin=origin,
            host=host,
        )
    except AuthGateError as err:
        refused_cleanly(err)
    if cookie is not None:
        parse_cookies(cookie)


# -- tokens -------------------------------------------------------------------------------------


@FUZZ
@given(token=TEXT)
def test_any_text_as_a_token(gate: Gate, token: str) -> None:
    FED["token-text"] += 1
    for attempt in (gate.authenticate, gate.refresh):
        try:
            attempt(token)
        except AuthGateError as err:
            refused_cleanly(err)
        else:
            pytest.fail(f"{attempt.__name__} accepted {token!r}")


@FUZZ
@given(
    header=st.binary(max_size=200),
    payload=st.binary(max_size=200),
    signature=st.binary(max_size=80),
)
def test_any_bytes_in_the_three_segments(
    gate: Gate, header: bytes, payload: bytes, signature: bytes
) -> None:
    FED["token-segments"] += 1
    with pytest.raises(AuthGateError) as info:
        gate.authenticate(f"{b64(header)}.{b64(payload)}.{b64(signature)}")
    refused_cleanly(info.value)


@FUZZ
@given(
    header=JSON
    | st.fixed_dictionaries(
        {"alg": st.sampled_from(["HS256", "none", "RS256"]) | JSON},
        optional={k: JSON for k in HEADER_KEYS},
    ),
    payload=JSON | NESTED | st.fixed_dictionaries({}, optional={k: JSON for k in CLAIMS}),
)
def test_signed_tokens_with_any_header_and_claims(gate: Gate, header: Any, payload: Any) -> None:
    """Signed with the real secret, so every claim check is reached."""
    FED["token-signed"] += 1
    try:
        gate.authenticate(signed(header, payload))
    except AuthGateError as err:
        refused_cleanly(err)


# -- bodies and routes -------------------------------------------------------------------------

FIELDS = (
    "username", "password", "refresh_token", "current_password", "new_password", "role",
    "roles", "groups", "permissions", "enabled", "email", "first_name", "last_name",
    "display_name", "status", "name", "expires_in",
)  # fmt: skip
ROUTES = (
    ("POST", "/auth/login"),
    ("POST", "/auth/refresh"),
    ("POST", "/auth/logout"),
    ("PUT", "/auth/me/password"),
    ("POST", "/auth/keys"),
    ("DELETE", "/auth/keys/x"),
    ("DELETE", "/auth/sessions/x"),
    ("POST", "/api/users"),
    ("PATCH", "/api/users/bob"),
    ("PUT", "/api/users/bob/permissions"),
    ("PUT", "/api/users/bob/password"),
    ("GET", "/api/users"),
    ("GET", "/auth/scram"),
)
BODIES = st.one_of(
    st.binary(max_size=300),
    NESTED.map(str.encode),
    JSON.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=6).map(
        lambda v: json.dumps(v).encode()
    ),
)


@FUZZ
@given(
    route=st.sampled_from(ROUTES),
    body=BODIES,
    as_admin=st.booleans(),
    query=st.dictionaries(
        st.sampled_from(["limit", "cursor", "offset", "q"]), st.text(max_size=30), max_size=3
    ),
    authorization=st.sampled_from(["", "SCRAM-SHA-256 "]).flatmap(
        lambda p: st.builds(lambda t: p + t, TEXT)
    ),
)
def test_every_route_with_any_body(
    gate: Gate,
    admin: Identity,
    route: tuple[str, str],
    body: bytes,
    as_admin: bool,
    query: dict[str, str],
    authorization: str,
) -> None:
    FED["api"] += 1
    method, path = route
    who = admin if as_admin else ANONYMOUS
    response = gate.run(
        HttpApi.for_gate(gate).answer(
            ApiRequest(method, path, who, body, query=query, authorization=authorization)
        )
    )
    assert response is not None
    assert response.status < 500, response.body
    if response.status >= 400 and response.body:
        assert json.loads(response.body)["detail"]


@FUZZ
@given(route=st.sampled_from(ROUTES), body=NESTED, as_admin=st.booleans())
def test_every_route_with_deep_nesting(
    gate: Gate, admin: Identity, route: tuple[str, str], body: str, as_admin: bool
) -> None:
    FED["api-nested"] += 1
    who = admin if as_admin else ANONYMOUS
    response = gate.run(HttpApi.for_gate(gate).answer(ApiRequest(*route, who, body.encode())))
    assert response is not None
    assert response.status < 500, response.body


# -- names, grants, policies, documents ---------------------------------------------------------


@FUZZ
@given(text=TEXT)
def test_names_and_grants(text: str) -> None:
    FED["names"] += 1
    for parse in (normalize_username, normalize_group_name, parse_grant):
        try:
            parse(text)
        except AuthGateError as err:
            refused_cleanly(err)


@FUZZ
@given(
    data=st.dictionaries(
        st.sampled_from(["roles", "viewer", "admin", "hierarchy", "x"]) | st.text(max_size=10),
        JSON,
        max_size=4,
    )
)
def test_role_policies(data: dict[str, Any]) -> None:
    FED["policy"] += 1
    with contextlib.suppress(ConfigError):
        RolePolicy.from_dict(data)


@FUZZ
@given(raw=st.binary(max_size=400) | st.text(alphabet='[]{}"\\,:1 ', max_size=400))
def test_documents(raw: bytes | str) -> None:
    FED["documents"] += 1
    with contextlib.suppress(ValueError):
        documents.loads(raw)
