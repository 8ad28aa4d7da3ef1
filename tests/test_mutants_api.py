"""The HTTP API's body validator at its edges: every bound, every type, the field named
(found by mutation testing, docs/mutation.md)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from authgate.api import _BOOL, _INT, _LIST, _STR, MAX_BODY, HttpApi, _Field, _parse_body
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
    response = gate.run(
        HttpApi.for_gate(gate).answer(ApiRequest(method, path, who, json.dumps(body).encode()))
    )
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
    response = gate.run(
        HttpApi.for_gate(gate).answer(ApiRequest("GET", path, identity, b"", query=query))
    )
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


# -- a second round (the full run of this session) ----------------------------------------

ROOT_PW, BOB_PW = "root password 1", "bob password 1"


class Api:
    """A Gate with an admin (root) and a viewer (bob), called as the HTTP API is."""

    def __init__(self, **settings: Any) -> None:
        from authgate.gate import Gate
        from authgate.testing import cheap_hasher
        from conftest import SECRET

        self.gate = Gate(store="memory://", hasher=cheap_hasher(), secret_key=SECRET, **settings)
        self.gate.create_user("root", ROOT_PW, roles=["admin"])
        self.gate.create_user("bob", BOB_PW, roles=["viewer"], email="bob@example.com",
                              first_name="Bob", last_name="Ray")  # fmt: skip
        self.root = self.who("root", ROOT_PW)

    def who(self, name: str, password: str) -> Any:
        return self.gate.authenticate(self.gate.login(name, password).access_token)

    def __call__(
        self, method: str, path: str, body: Any = None, who: Any = None, if_match: str = ""
    ) -> Any:
        from authgate.api import ApiRequest

        raw = json.dumps(body).encode() if body is not None else b""
        request = ApiRequest(method, path, who or self.root, raw, if_match=if_match)
        return self.gate.run(HttpApi.for_gate(self.gate).answer(request))


def test_every_answer_is_kept_out_of_caches_and_typed() -> None:
    from authgate.api import ApiResponse

    assert ApiResponse.json(200, {"a": 1}).headers == [
        ("content-type", "application/json"),
        ("cache-control", "no-store"),
    ]
    empty = ApiResponse.empty()
    assert (empty.status, empty.body, empty.headers) == (204, b"", [("cache-control", "no-store")])
    assert empty.data() is None


def test_a_method_a_route_does_not_take_is_a_405_in_json() -> None:
    api = Api()
    answer = api("DELETE", "/auth/login")
    assert answer.status == 405
    assert answer.data() == {"error": "method_not_allowed", "detail": "DELETE is not allowed here"}


def test_only_routes_of_the_api_are_its_own() -> None:
    api = HttpApi.for_gate(Api().gate)
    assert api.owns("/auth/login") and api.owns("/api/users/bob")
    assert not api.owns("/auth/nothing") and not api.owns("/elsewhere")


@pytest.mark.parametrize(
    ("path", "found"),
    [("/api/users/bob/", "bob"), ("/api/users/BOX/", "box"), ("/auth/sessions/", None),
     ("/auth/keys/a/b", None), ("/api/users/a/b", None)],
)  # fmt: skip
def test_a_path_parameter_is_one_segment_a_trailing_slash_aside(
    path: str, found: str | None
) -> None:
    api = Api()
    api.gate.create_user("box", "box password 1")
    answer = api("GET" if path.startswith("/api/users") else "DELETE", path)
    if found is None:
        assert answer is None
    else:
        assert answer.status == 200 and answer.data()["username"] == found


def test_me_shows_the_profile_and_a_display_name() -> None:
    api = Api()
    me = api("GET", "/auth/me", who=api.who("bob", BOB_PW)).data()
    assert (me["email"], me["first_name"], me["last_name"]) == ("bob@example.com", "Bob", "Ray")
    assert me["display_name"] == "Bob Ray" and me["role"] == "viewer"


def test_an_admin_cannot_delete_themself_even_beside_another_admin() -> None:
    api = Api()
    api.gate.create_user("ada", "ada password 1", roles=["admin"])
    answer = api("DELETE", "/api/users/root")
    assert answer.status == 409
    assert answer.data()["detail"] == "refused: you cannot delete your own account"
    assert api.gate.store.get_user("root") is not None


def _user(api: Api, name: str) -> Any:
    user = api.gate.store.get_user(name)
    assert user is not None
    return user


class _Racing:
    """A store on which another admin changes `username` just before the `nth` call of
    `method` (the write, or the flow's own read after the If-Match check)."""

    def __init__(self, store: Any, method: str, username: str, nth: int) -> None:
        self.store, self.method, self.username, self.nth = store, method, username, nth
        self.calls, self.raced = 0, False

    def __getattr__(self, name: str) -> Any:
        found = getattr(self.store, name)
        if name != self.method:
            return found

        def racing(*args: Any) -> Any:
            self.calls += 1
            if self.calls == self.nth:
                self.raced = True
                user = self.store.get_user(self.username)
                self.store.update_user(user.changed(email="other@example.com"), user.version)
            return found(*args)

        return racing


@pytest.mark.parametrize("when", ["before-the-write", "before-the-flows-read"])
@pytest.mark.parametrize(
    ("method", "path", "body", "write"),
    [("DELETE", "/api/users/bob", None, "delete_user"),
     ("PATCH", "/api/users/bob", {"first_name": "B"}, "update_user"),
     ("PUT", "/api/users/bob/permissions", {"permissions": ["docs:read"]}, "update_user"),
     ("PUT", "/api/users/bob/password", {"password": "bob password 2"}, "update_user")],
    ids=["delete", "patch", "permissions", "password"],
)  # fmt: skip
def test_a_conditional_write_that_loses_a_race_is_a_412_and_writes_nothing(
    method: str, path: str, body: Any, write: str, when: str
) -> None:
    """If-Match named the version read, then another admin wrote before this write (or
    before the flow read the user again): refused with a 412, not a 409 or a 2xx, and
    nothing of this request is written."""
    from authgate.api import ApiRequest, etag
    from authgate.flows import run

    api = Api()
    user = _user(api, "bob")
    raw = json.dumps(body).encode() if body is not None else b""
    request = ApiRequest(method, path, api.root, raw, if_match=etag(user))
    flow = HttpApi.for_gate(api.gate).handle(request)
    assert flow is not None
    racing = (
        _Racing(api.gate.store, write, "bob", 1)
        if when == "before-the-write"
        else _Racing(api.gate.store, "get_user", "bob", 2)
    )
    answer = run(flow, racing, api.gate.hasher, api.gate.audit.emit)
    assert racing.raced and answer.status == 412, answer
    after = _user(api, "bob")
    assert after.email == "other@example.com"  # only the other write
    assert (after.password_hash, after.permissions, after.first_name) == (
        user.password_hash,
        user.permissions,
        user.first_name,
    )


def test_if_match_takes_a_list_of_tags_with_or_without_spaces() -> None:
    from authgate.api import etag

    api = Api()
    tag = etag(_user(api, "bob"))
    for n, form in enumerate(('{},"x.1"', '"x.1", {}', '"x.1",{}')):
        header = form.format(tag)
        answer = api("PATCH", "/api/users/bob", {"first_name": f"B{n}"}, if_match=header)
        assert answer.status == 200, header
        tag = dict(answer.headers)["etag"]


def test_an_empty_patch_writes_nothing() -> None:
    api = Api()
    before = api.gate.store.get_user("bob")
    answer = api("PATCH", "/api/users/bob", {})
    assert answer.status == 200 and api.gate.store.get_user("bob") == before


def test_a_bad_grant_in_a_permissions_write_says_what_is_wrong() -> None:
    answer = Api()("PUT", "/api/users/bob/permissions", {"permissions": ["no colon"]})
    assert (answer.status, answer.data()["detail"]) == (
        400,
        "invalid permission 'no colon': expected 'resource:action'",
    )


def test_a_password_reset_answers_with_the_new_etag() -> None:
    from authgate.api import etag

    api = Api()
    answer = api("PUT", "/api/users/bob/password", {"password": "bob password 2"})
    assert answer.status == 204
    assert answer.headers[-1] == ("etag", etag(_user(api, "bob")))


def test_a_refusal_names_the_apis_realm() -> None:
    from authgate.api import ApiRequest, HttpApi

    api = Api()
    mounted = HttpApi(api.gate.rules, api.gate.roles, realm="plantdb")
    answer = api.gate.run(mounted.answer(ApiRequest("GET", "/auth/me", ANONYMOUS_IDENTITY)))
    assert answer is not None and answer.status == 401
    assert dict(answer.headers)["www-authenticate"].startswith('Bearer realm="plantdb"')


def test_keys_with_account_rights_manage_the_account_over_the_api() -> None:
    api = Api()
    bob = api.who("bob", BOB_PW)
    made = api("POST", "/auth/keys", {"name": "ops", "permissions": ["account:keys",
               "account:sessions"], "expires_in": 3600}, who=bob)  # fmt: skip
    assert made.status == 201 and made.data()["expires_at"] is not None
    key = api.gate.authenticate(made.data()["key"])
    child = api("POST", "/auth/keys", {"name": "c", "permissions": ["account:sessions"]}, who=key)
    assert child.status == 201
    assert api("GET", "/auth/sessions", who=key).status == 200
    assert api("DELETE", f"/auth/sessions/{bob.session_id}", who=key).status == 204
    assert api("DELETE", f"/auth/keys/{child.data()['id']}", who=key).status == 204


def test_scram_answers_are_kept_out_of_caches() -> None:
    import base64

    api = Api()
    user = base64.urlsafe_b64encode(b"bob").rstrip(b"=").decode()
    from authgate.api import ApiRequest

    hello = api.gate.run(
        HttpApi.for_gate(api.gate).answer(
            ApiRequest(
                "GET", "/auth/scram", ANONYMOUS_IDENTITY, authorization=f"HELLO username={user}"
            )
        )
    )
    assert hello is not None and hello.status == 401
    assert hello.data() == {"error": "scram", "detail": "continue the SCRAM handshake"}
    assert ("cache-control", "no-store") in hello.headers
    assert ("content-type", "application/json") in hello.headers
    ghost = base64.urlsafe_b64encode(b"ghost").rstrip(b"=").decode()
    answer = api.gate.run(
        HttpApi.for_gate(api.gate).answer(
            ApiRequest(
                "GET", "/auth/scram", ANONYMOUS_IDENTITY, authorization=f"HELLO username={ghost}"
            )
        )
    )
    assert answer is not None and answer.status == 401  # an unknown name: the same answer


from authgate.identity import ANONYMOUS as ANONYMOUS_IDENTITY  # noqa: E402


def test_a_logout_and_a_grants_write_are_audited_with_who_did_them() -> None:
    api = Api()
    heard: list[tuple[str, str, str]] = []
    api.gate.audit.subscribe(lambda e: heard.append((e.event, e.username, e.actor)))
    assert api("PUT", "/api/users/bob/permissions", {"permissions": ["docs:read"]}).status == 200
    assert api("POST", "/auth/logout", who=api.who("bob", BOB_PW)).status == 204
    assert ("user_updated", "bob", "root") in heard
    assert ("logout", "bob", "") in heard


def test_roles_given_in_any_case_are_stored_as_the_order_names_them() -> None:
    api = Api()
    made = api("POST", "/api/users/", {"username": "cyd", "password": "cyd password 1",
               "roles": ["Operator"]})  # fmt: skip
    assert made.status == 201 and made.data()["roles"] == ["operator"]


def test_me_shows_the_profile_as_stored_even_from_a_stateless_token() -> None:
    """A stateless token carries no profile: /auth/me reads it from the store."""
    api = Api(stateless=True)
    bob = api.who("bob", BOB_PW)
    api.gate.update_user("bob", email="ray@example.com")
    me = api("GET", "/auth/me", who=bob).data()
    assert (me["email"], me["display_name"]) == ("ray@example.com", "Bob Ray")


def test_an_api_built_with_its_defaults_and_with_its_own_prefixes() -> None:
    from authgate.api import ApiRequest, HttpApi

    api = Api()
    plain = HttpApi(api.gate.rules, api.gate.roles)
    denied = api.gate.run(plain.answer(ApiRequest("GET", "/auth/me", ANONYMOUS_IDENTITY)))
    assert denied is not None
    assert dict(denied.headers)["www-authenticate"].startswith('Bearer realm="authgate"')
    scram = api.gate.run(
        plain.answer(
            ApiRequest(
                "GET", "/auth/scram", ANONYMOUS_IDENTITY, authorization="HELLO username=Ym9i"
            )
        )
    )
    assert scram is not None and scram.status == 404  # no SCRAM secret given: not offered
    patched = api.gate.run(
        plain.answer(ApiRequest("PATCH", "/api/users/bob", api.root, b'{"first_name": "Bo"}'))
    )
    assert patched is not None and patched.status == 200  # If-Match not required
    moved = HttpApi(api.gate.rules, api.gate.roles, auth_prefix="/sessionX/",
                    users_prefix="/peopleX/")  # fmt: skip
    assert moved.owns("/sessionX/login") and moved.owns("/peopleX/bob")
    assert not moved.owns("/session/login") and not moved.owns("/people/bob")


SECRET_KEY = "test-secret-key-that-is-long-enough-0123456789"
TOO_LARGE = {
    "error": "invalid_request",
    "detail": f"the request body must be 0 to {MAX_BODY} bytes",
}


def test_the_asgi_mount_refuses_a_body_over_the_limit_before_reading_more() -> None:
    import asyncio

    from authgate import AsyncGate
    from authgate.middleware.asgi import AuthGateApi
    from authgate.testing import cheap_hasher

    gate = AsyncGate(store="memory://", secret_key=SECRET_KEY, hasher=cheap_hasher())
    mount: Any = AuthGateApi(None, gate)
    chunks = [b"{" + b" " * MAX_BODY, b"}"]  # the second chunk is never asked for
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": chunks.pop(0), "more_body": bool(chunks)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/auth/login", "headers": []}
    asyncio.run(mount(scope, receive, send))
    assert sent[0]["status"] == 400
    assert json.loads(sent[1]["body"]) == TOO_LARGE
    assert chunks == [b"}"]


@pytest.mark.parametrize("length", [str(MAX_BODY + 1), "-1", "many"])
def test_the_wsgi_mount_refuses_a_body_of_no_valid_length(length: str) -> None:
    import io

    from authgate import Gate
    from authgate.middleware.wsgi import AuthGateWSGIApi
    from authgate.testing import cheap_hasher

    gate = Gate(store="memory://", secret_key=SECRET_KEY, hasher=cheap_hasher())
    mount: Any = AuthGateWSGIApi(None, gate)
    statuses: list[str] = []
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/auth/login",
        "CONTENT_LENGTH": length,
        "wsgi.input": io.BytesIO(b"{}"),
    }
    body = b"".join(mount(environ, lambda status, headers, exc=None: statuses.append(status)))
    assert statuses == ["400 Bad Request"]
    assert json.loads(body) == TOO_LARGE
    gate.close()


def test_an_api_built_from_a_gate_takes_its_prefixes() -> None:
    from authgate import Gate
    from authgate.testing import cheap_hasher

    gate = Gate(store="memory://", secret_key=SECRET_KEY, hasher=cheap_hasher())
    api = HttpApi.for_gate(gate, auth_prefix="/v2/auth", users_prefix="/v2/users")
    assert api.owns("/v2/auth/login") and api.owns("/v2/users")
    assert not api.owns("/auth/login") and not api.owns("/api/users")
    gate.close()
