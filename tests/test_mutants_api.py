"""The HTTP API's body validator at its edges: every bound, every type, the field named
(found by mutation testing, docs/mutation.md)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from authgate.api import _BOOL, _INT, _LIST, _STR, MAX_BODY, _Field, _parse_body
from authgate.errors import ValidationError

FIELDS = {
    "name": _Field(_STR, True, 5),
    "flag": _Field(_BOOL),
    "count": _Field(_INT),
    "tags": _Field(_LIST, max_length=3),
}


TAGS = "field 'tags' must be a list of strings of at most 3 characters"


def parse(body: Any) -> dict[str, Any]:
    return _parse_body(json.dumps(body).encode(), FIELDS)


def refusal(body: Any) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        _parse_body(body if isinstance(body, bytes) else json.dumps(body).encode(), FIELDS)
    return info.value


def test_a_body_of_exactly_the_limit_is_read_and_one_byte_more_is_not() -> None:
    pad = MAX_BODY - len(json.dumps({"name": "a", "tags": []}).encode())
    exact = json.dumps({"name": "a", "tags": []}).encode() + b" " * pad
    assert len(exact) == MAX_BODY and _parse_body(exact, FIELDS)["name"] == "a"
    assert "larger than" in refusal(exact + b" ").detail


def test_an_empty_body_is_no_object() -> None:
    assert refusal(b"").detail == "the request body must be a JSON object"


@pytest.mark.parametrize(
    ("body", "field", "detail"),
    [
        ({"name": "a", "extra": 1}, "extra", "unknown field 'extra'"),
        ({}, "name", "field 'name' is required"),
        ({"name": None}, "name", "field 'name' is required"),
        ({"name": "abcdef"}, "name", "field 'name' must be a string of at most 5 characters"),
        ({"name": 5}, "name", "field 'name' must be a string of at most 5 characters"),
        ({"name": "a", "flag": 1}, "flag", "field 'flag' must be true or false"),
        ({"name": "a", "count": True}, "count", "field 'count' must be an integer"),
        ({"name": "a", "count": "1"}, "count", "field 'count' must be an integer"),
        ({"name": "a", "tags": "x"}, "tags", TAGS),
        ({"name": "a", "tags": ["abcd"]}, "tags", TAGS),
        ({"name": "a", "tags": [1]}, "tags", TAGS),
        ({"name": "a", "tags": ["a"] * 257}, "tags", TAGS),
    ],
)
def test_each_refusal_names_its_field(body: Any, field: str, detail: str) -> None:
    err = refusal(body)
    assert (err.field, err.detail) == (field, detail)


def test_the_bounds_themselves_are_accepted_and_null_optionals_dropped() -> None:
    data = parse({"name": "abcde", "count": 0, "tags": ["abc"] * 256, "flag": None})
    assert data == {"name": "abcde", "count": 0, "tags": ["abc"] * 256}
    assert parse({"name": "a", "count": -3, "flag": False}) == {
        "name": "a",
        "count": -3,
        "flag": False,
    }


# -- roles in user bodies ------------------------------------------------------------------


def _admin_call(method: str, path: str, body: Any) -> tuple[int, Any]:
    from authgate.api import ApiRequest
    from authgate.gate import Gate
    from authgate.testing import cheap_hasher
    from conftest import SECRET

    gate = Gate(store="memory://", hasher=cheap_hasher(), secret_key=SECRET)
    gate.create_user("root", "root password 1", roles=["admin"])
    gate.create_user("bob", "bob password 1", roles=["viewer"])
    who = gate.authenticate(gate.login("root", "root password 1").access_token)
    response = gate.handle_api(ApiRequest(method, path, who, json.dumps(body).encode()))
    assert response is not None
    return response.status, response.data()


@pytest.mark.parametrize(
    ("method", "path", "extra"),
    [("POST", "/api/users", {"username": "cy", "password": "cy password 1"}),
     ("PATCH", "/api/users/bob", {})],
)  # fmt: skip
def test_role_and_roles_together_are_refused(method: str, path: str, extra: Any) -> None:
    status, data = _admin_call(method, path, {**extra, "role": "viewer", "roles": ["viewer"]})
    assert (status, data["detail"]) == (400, "give either 'role' or 'roles', not both")


def test_an_admin_may_grant_the_admin_role() -> None:
    status, data = _admin_call("PATCH", "/api/users/bob", {"role": "admin"})
    assert (status, data["roles"]) == (200, ["admin"])
    status, data = _admin_call("PATCH", "/api/users/bob", {"roles": ["operator", "viewer"]})
    assert (status, sorted(data["roles"])) == (200, ["operator", "viewer"])
