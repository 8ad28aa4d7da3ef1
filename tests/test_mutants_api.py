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


# -- listing, status, /auth/me -----------------------------------------------------------------


def _gate_with(users: int) -> Any:
    from authgate.gate import Gate
    from authgate.testing import cheap_hasher
    from conftest import SECRET

    gate = Gate(store="memory://", hasher=cheap_hasher(), secret_key=SECRET)
    gate.create_user("root", "root password 1", roles=["admin"])
    for n in range(users):
        gate.create_user(f"user{n:03}", passwordless=True)
    return gate


def _get(gate: Any, path: str, query: dict[str, str], who: str = "root") -> tuple[int, Any]:
    from authgate.api import ApiRequest

    identity = gate.authenticate(gate.login(who, f"{who} password 1").access_token)
    response = gate.handle_api(ApiRequest("GET", path, identity, b"", query=query))
    return response.status, response.data()


def test_listing_users_pages_with_its_bounds() -> None:
    gate = _gate_with(120)
    status, page = _get(gate, "/api/users", {})
    assert status == 200 and len(page["items"]) == 100  # the default page
    assert page["next_after"] == page["items"][-1]["username"]
    status, rest = _get(gate, "/api/users", {"after": page["next_after"]})
    assert status == 200 and len(rest["items"]) == 21 and rest["next_after"] is None
    assert _get(gate, "/api/users", {"limit": "1"})[1]["items"][0]["username"] == "root"
    assert len(_get(gate, "/api/users", {"limit": "1000"})[1]["items"]) == 121
    for bad in ("0", "1001", "ten"):
        status, error = _get(gate, "/api/users", {"limit": bad})
        assert status == 400 and error["error"] == "invalid_request", bad


@pytest.mark.parametrize(
    ("body", "ok"),
    [
        ({"status": "inactive", "enabled": False}, True),
        ({"status": "active", "enabled": True}, True),
        ({"status": "inactive", "enabled": True}, False),
        ({"status": "active", "enabled": False}, False),
        ({"status": "ACTIVE"}, False),
    ],
)
def test_status_and_enabled_must_agree(body: dict[str, Any], ok: bool) -> None:
    status, data = _admin_call("PATCH", "/api/users/bob", body)
    if ok:
        assert status == 200 and data["status"] == body["status"]
    else:
        assert status == 400 and data["detail"] in (
            "'status' and 'enabled' disagree",
            "field 'status' must be 'active' or 'inactive'",
        )


def test_a_patch_with_nothing_to_change_answers_the_user_as_it_is() -> None:
    status, data = _admin_call("PATCH", "/api/users/bob", {})
    assert (status, data["username"], data["roles"]) == (200, "bob", ["viewer"])
    status, data = _admin_call("PATCH", "/api/users/nobody", {})
    assert status == 404


@pytest.mark.parametrize(
    ("fields", "shown"),
    [
        ({"display_name": "Dee", "first_name": "D", "last_name": "E"}, "Dee"),
        ({"first_name": "Dana", "last_name": "Eve"}, "Dana Eve"),
        ({}, "dana"),
    ],
)
def test_me_shows_the_profile_and_the_best_display_name(fields: dict[str, str], shown: str) -> None:
    gate = _gate_with(0)
    gate.create_user("dana", "dana password 1", email="d@example.com", **fields)
    status, me = _get(gate, "/auth/me", {}, who="dana")
    assert status == 200
    assert (me["email"], me["display_name"]) == ("d@example.com", shown)
    assert (me["first_name"], me["last_name"]) == (
        fields.get("first_name", ""),
        fields.get("last_name", ""),
    )
