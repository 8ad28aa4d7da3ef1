"""`authgate.http`: the fast path of `parse_authorization` answers exactly as its rules
do, for every header, hostile ones included."""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from authgate.errors import AuthGateError, MalformedToken
from authgate.http import MAX_CREDENTIAL, _parse_authorization, parse_authorization

SAME = settings(
    max_examples=2000,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)

B64TOKEN = string.ascii_letters + string.digits + "-._~+/"
# Characters that sit next to the b64token alphabet, or that a rule looks for.
NEAR = "= ,\t\r\n\x0b\x0c\x1c\x85\xa0\u2028\u3000\"';:\\\x00\x7f\xff\u0130\u212a\udc80éß"
SCHEMES = [
    "Bearer ",
    "bearer ",
    "BEARER ",
    "Bearer  ",
    "Bearer\t",
    " Bearer ",
    "Bearer",
    "bearer",
    "BEARER",
    "Bearerx",
    "Bearer authToken=",
    "bearer AUTHTOKEN=",
    "ApiKey ",
    "apikey ",
    "Basic ",
    "",
]
TOKENS = st.one_of(
    st.text(alphabet=B64TOKEN, max_size=80),
    st.text(alphabet=B64TOKEN + NEAR, max_size=80),
    st.text(max_size=80),
    st.from_regex(
        r"[A-Za-z0-9_\-]{1,40}\.[A-Za-z0-9_\-]{1,40}\.[A-Za-z0-9_\-]{0,40}={0,3}", fullmatch=True
    ),
    st.builds(
        lambda n, c: "a" * n + c,
        st.sampled_from([MAX_CREDENTIAL - 1, MAX_CREDENTIAL, MAX_CREDENTIAL + 1]),
        st.sampled_from(["", "b", "=", " ", ","]),
    ),
)
HEADERS = st.builds(
    lambda s, t, tail: s + t + tail,
    st.sampled_from(SCHEMES),
    TOKENS,
    st.sampled_from(["", " ", ",", ", Bearer x", "=", "\n", ", x=1"]),
)


def answer(parse: object, value: str) -> tuple[str, object]:
    """What a parser makes of `value`: its token, or its refusal's type and words."""
    assert callable(parse)
    try:
        return "token", parse(value)
    except AuthGateError as err:
        return type(err).__name__, err.detail


@SAME
@given(value=HEADERS | st.text(max_size=120))
@example("Bearer " + "a" * MAX_CREDENTIAL)
@example("Bearer " + "a" * (MAX_CREDENTIAL + 1))
@example("Bearer a=")
@example("Bearer ")
@example("Bearer a ")
@example("Bearer a,")
@example("Bearer a\u0130")
@example("bearer authtoken=x")
def test_the_fast_path_answers_as_the_rules_do(value: str) -> None:
    assert answer(parse_authorization, value) == answer(_parse_authorization, value)


@pytest.mark.parametrize(
    "value",
    [
        "Bearer a b",
        "Bearer a\x00",
        "Bearer é",
        "Bearer \udc80",
        "Bearer a,b",
        "Bearer " + "a" * (MAX_CREDENTIAL + 1),
    ],
)
def test_a_bearer_header_with_a_stray_character_or_too_long_is_malformed(value: str) -> None:
    with pytest.raises(MalformedToken):
        parse_authorization(value)


def test_the_everyday_bearer_header_gives_its_token() -> None:
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln-_~+/"
    assert parse_authorization(f"Bearer {token}") == token
    assert parse_authorization(f"bearer {token}") == token
    assert parse_authorization(f"BEARER {token}") == token  # by the rules, not the fast path
