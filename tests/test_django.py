"""The Django integration with Django's own test client, its ASGI handler, ``manage.py``
(``authgate`` commands, and ``runserver``, which serves the project with its middleware).

The end-to-end contract (every route, every role, every store, over gunicorn) runs on
``examples/django_app`` in tests/test_contract_apps.py; here are what only Django has:
the login redirect for pages, class-based views, URLs under a prefix, settings.py.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

pytest.importorskip("django")  # the core's tox env has no Django

import django
import httpx
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.test import Client, override_settings
from django.urls import include, path
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import View

from authgate import current_identity, require_auth, require_fresh, require_role
from authgate.browser import BrowserRules
from authgate.context import hiding_objects
from authgate.errors import StoreUnavailable
from authgate.integrations.django import (
    AuthRequiredMixin,
    FreshLoginRequiredMixin,
    IdentifiedRequest,
    ObjectPermissionRequiredMixin,
    PermissionRequiredMixin,
    PolicyRequiredMixin,
    RoleRequiredMixin,
    get_gate,
)
from authgate.permissions import HasRole, IsOwner, RolePolicy
from authgate.testing import free_port

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_app.settings")
django.setup()

ROOT = Path(__file__).resolve().parent.parent
SECRET = "django-suite-secret-key-that-is-long-enough-1"
MANAGE = ROOT / "examples" / "django_app" / "manage.py"
ADMIN, ADMIN_PW = "admin", "admin password 1"
PW = "user password 1"
POLICY = RolePolicy({"operator": ["reports:read"], "admin": ["*:*"]})


# --- the views these tests mount (ROOT_URLCONF = this module) -------------------------


@require_auth
def me(request: IdentifiedRequest) -> JsonResponse:
    return JsonResponse(
        {
            "request": request.identity.username,
            "proxy": current_identity.username,
            "hiding": hiding_objects(),
        }
    )


@require_role("admin")
def admin_page(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"page": "admin"})


class Reports(PermissionRequiredMixin, View):
    permission_required = "reports:read"

    def get(self, request: HttpRequest) -> JsonResponse:
        return JsonResponse({"page": "reports"})


class Operators(RoleRequiredMixin, View):
    role_required = ("operator",)

    def get(self, request: HttpRequest) -> JsonResponse:
        return JsonResponse({"page": "operators"})


class Signed(AuthRequiredMixin, View):
    def get(self, request: HttpRequest) -> JsonResponse:
        return JsonResponse({"page": "signed in"})


class Unset(PolicyRequiredMixin, View):
    def get(self, request: HttpRequest) -> JsonResponse:
        return JsonResponse({"page": "never"})


class Note:
    def __init__(self, owner: str) -> None:
        self.owner = owner


class NoteLoader(View):
    """Loads the object, as a ``DetailView``'s ``SingleObjectMixin`` does (``?id=2``
    names none: Django's ``Http404``)."""

    def get_object(self) -> Note:
        if self.request.GET.get("id") == "2":
            raise Http404()
        return Note(owner="alice")


class NoteView(ObjectPermissionRequiredMixin, NoteLoader):
    object_action = "read"
    object_policy = HasRole("admin") | IsOwner(groups_attr=None)

    def get(self, request: HttpRequest) -> JsonResponse:
        note = self.get_object()
        return JsonResponse({"owner": note.owner})


class HiddenNoteView(NoteView):
    hide_objects = True


class OwnLoaderView(ObjectPermissionRequiredMixin, View):
    """Loads the object itself, never calling the mixin's get_object."""

    object_policy = HasRole("admin") | IsOwner(groups_attr=None)

    def get_object(self) -> Note:
        return Note(owner="alice")

    def get(self, request: HttpRequest) -> JsonResponse:
        return JsonResponse({"owner": self.get_object().owner})


class CallsSuperView(NoteView):
    """Overrides get_object and calls super(): checked once, not twice."""

    calls = 0

    def get_object(self) -> Note:
        note: Note = super().get_object()
        return note

    def _check_object(self, obj: object) -> None:
        CallsSuperView.calls += 1
        super()._check_object(obj)


class Described(AuthRequiredMixin, View):
    """A view with an ``options`` of its own, which says more than the methods."""

    def options(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return JsonResponse({"fields": ["secret"]})


@require_auth
def stream(request: HttpRequest) -> StreamingHttpResponse:
    def chunks() -> Iterator[bytes]:
        yield b"for "
        yield current_identity.username.encode()

    return StreamingHttpResponse(chunks())


NOTES: list[str] = []


@require_auth
def notes(request: HttpRequest) -> JsonResponse:
    """An app's own form handler: reached only with the session's CSRF token."""
    NOTES.append(str(request.POST.get("text", "")))
    return JsonResponse({"notes": NOTES})


@require_fresh(300)
def transfer(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"moved": current_identity.username})


class Transfer(FreshLoginRequiredMixin, AuthRequiredMixin, View):
    max_age = 300

    def get(self, request: HttpRequest) -> JsonResponse:
        return JsonResponse({"moved": current_identity.username})


def store_down(request: HttpRequest) -> JsonResponse:
    raise StoreUnavailable("the store is down", retry_after=7)


urlpatterns = [
    path("me", me),
    path("admin", admin_page),
    path("reports", Reports.as_view()),
    path("operators", Operators.as_view()),
    path("signed", Signed.as_view()),
    path("unset", Unset.as_view()),
    path("note", NoteView.as_view()),
    path("hidden-note", HiddenNoteView.as_view()),
    path("own-loader", OwnLoaderView.as_view()),
    path("calls-super", CallsSuperView.as_view()),
    path("described", Described.as_view()),
    path("stream", stream),
    path("store-down", store_down),
    path("transfer", transfer),
    path("transfer-view", Transfer.as_view()),
    path("notes", notes),
    path("accounts/", include("authgate.integrations.django.urls")),
    path("accounts/auth/", admin_page, name="authgate-auth"),
]


# --- fixtures -------------------------------------------------------------------------


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {
        "AUTHGATE_STORE": f"sqlite:///{tmp_path / 'authgate.db'}",
        "AUTHGATE_SECRET_KEY": SECRET,
        "AUTHGATE_SUPERUSER_USERNAME": ADMIN,
        "AUTHGATE_SUPERUSER_PASSWORD": ADMIN_PW,
        "AUTHGATE_ARGON2_TIME_COST": "1",
        "AUTHGATE_ARGON2_MEMORY_COST": "8",
        "AUTHGATE_ARGON2_PARALLELISM": "1",
        "AUTHGATE_LOG_FORMAT": "none",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


@pytest.fixture
def client(env: dict[str, str]) -> Iterator[Client]:
    """Django's test client on this module's URLs, with the test policy."""
    with override_settings(ROOT_URLCONF=__name__, AUTHGATE_POLICY=f"{__name__}.POLICY"):
        gate = get_gate()
        gate.ensure_superuser()
        gate.create_user("alice", PW, roles=["viewer"])
        gate.create_user("olga", PW, roles=["operator"])
        yield Client()


def _token(client: Client, username: str, password: str = PW) -> str:
    reply = client.post(
        "/accounts/auth/login",
        {"username": username, "password": password},
        content_type="application/json",
    )
    assert reply.status_code == 200, reply.content
    return str(reply.json()["access_token"])


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- the middleware -------------------------------------------------------------------


def test_request_identity_and_the_proxy_name_the_caller(client: Client) -> None:
    reply = client.get("/me", headers=_bearer(_token(client, "alice")))
    assert reply.status_code == 200
    assert reply.json() == {"request": "alice", "proxy": "alice", "hiding": False}
    # Nothing of the request stays in the serving thread's context.
    assert not current_identity.is_authenticated


def test_no_credential_is_a_401_json_with_www_authenticate(client: Client) -> None:
    reply = client.get("/me")
    assert reply.status_code == 401
    assert reply.headers["WWW-Authenticate"] == 'Bearer realm="authgate"'
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.json() == {"error": "not_authenticated", "detail": "authentication required"}


def test_a_bad_token_is_a_401_invalid_token_before_any_view(client: Client) -> None:
    reply = client.get("/me", headers=_bearer("not.a.token"))
    assert reply.status_code == 401
    assert 'error="invalid_token"' in reply.headers["WWW-Authenticate"]
    assert reply.json()["error"] == "invalid_token"


def test_a_lower_role_is_a_403_naming_what_was_required(client: Client) -> None:
    reply = client.get("/admin", headers=_bearer(_token(client, "alice")))
    assert reply.status_code == 403
    assert reply.json() == {"error": "forbidden", "detail": "requires admin role"}


class _Later:
    """The clock `check_fresh` reads, an hour on."""

    @staticmethod
    def time() -> float:
        return time.time() + 3600


def test_an_old_login_is_asked_to_prove_it_again(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = _bearer(_token(client, "alice"))
    for view in ("/transfer", "/transfer-view"):
        assert client.get(view, headers=alice).json() == {"moved": "alice"}
        assert client.get(view).status_code == 401
    monkeypatch.setattr("authgate.decorators.time", _Later)
    for view in ("/transfer", "/transfer-view"):
        old = client.get(view, headers=alice)
        assert old.status_code == 401, view
        assert old.json()["error"] == "insufficient_user_authentication"
        assert old.headers["WWW-Authenticate"].endswith(', max_age="300"')


def test_the_realm_comes_from_settings(client: Client) -> None:
    with override_settings(AUTHGATE_REALM="reports"):
        reply = Client().get("/me")
    assert reply.headers["WWW-Authenticate"] == 'Bearer realm="reports"'


PREFLIGHT = {"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}


def test_a_cors_preflight_passes_the_mixin_guards(client: Client) -> None:
    reply = client.options("/reports", headers={**PREFLIGHT, **_bearer("garbage")})
    assert reply.status_code == 200  # Django's View.options: the allowed methods only
    assert reply.content == b""


def test_an_options_that_is_no_preflight_or_is_the_views_own_is_guarded(
    client: Client,
) -> None:
    assert client.options("/reports").status_code == 401
    assert client.options("/described", headers=PREFLIGHT).status_code == 401
    token = _token(client, "alice")
    assert client.options("/described", headers=_bearer(token)).json() == {"fields": ["secret"]}


def test_head_is_guarded_as_get(client: Client) -> None:
    assert client.head("/reports").status_code == 401
    assert client.head("/reports", headers=_bearer(_token(client, "alice"))).status_code == 403
    assert client.head("/me").status_code == 401


def test_a_streamed_body_is_produced_with_the_identity(client: Client) -> None:
    reply = client.get("/stream", headers=_bearer(_token(client, "alice")))
    assert reply.status_code == 200
    assert b"".join(reply.streaming_content) == b"for alice"  # type: ignore[attr-defined]


def test_a_mixin_listed_after_the_view_is_refused() -> None:
    with pytest.raises(TypeError, match="put the mixin first"):

        class Wrong(View, AuthRequiredMixin):  # type: ignore[misc] # View.dispatch skips the guard
            pass

    with pytest.raises(TypeError, match="put the mixin first"):

        class WrongObject(NoteLoader, ObjectPermissionRequiredMixin):
            pass


def test_a_guard_refusal_in_a_view_is_audited(client: Client) -> None:
    events: list[Any] = []
    get_gate().audit.subscribe(events.append)
    client.get("/admin", headers=_bearer(_token(client, "alice")))
    denied = [e for e in events if e.event == "permission_denied"]
    assert denied and denied[-1].username == "alice"


def test_failures_count_against_the_callers_address(env: dict[str, str]) -> None:
    with override_settings(ROOT_URLCONF=__name__, AUTHGATE_MAX_FAILURES_PER_ADDRESS=3):
        gate = get_gate()
        gate.create_user("alice", PW)
        client = Client()
        wrong = {"username": "alice", "password": "not it"}

        def attempt(address: str) -> int:
            reply = client.post(
                "/accounts/auth/login", wrong, content_type="application/json", REMOTE_ADDR=address
            )
            return reply.status_code

        assert [attempt("192.0.2.1") for _ in range(4)] == [401, 401, 401, 429]
        assert attempt("192.0.2.9") == 401  # another address: its own count


def test_objects_are_hidden_when_the_settings_say_so(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTHGATE_HIDE_OBJECTS", "true")
    with override_settings(ROOT_URLCONF=__name__):
        get_gate().create_user("alice", PW)
        client = Client()
        token = _token(client, "alice")
        assert client.get("/me", headers=_bearer(token)).json()["hiding"] is True


# --- page requests and the login URL ---------------------------------------------------

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def test_a_page_with_no_identity_is_sent_to_the_login_url_with_next(client: Client) -> None:
    with override_settings(AUTHGATE_LOGIN_URL="/login/"):
        reply = Client().get("/me?tab=2", headers=HTML)
    assert reply.status_code == 302
    assert reply.headers["Location"] == "/login/?next=/me%3Ftab%3D2"


def test_the_login_redirect_follows_the_browsers_preference(client: Client) -> None:
    with override_settings(AUTHGATE_LOGIN_URL="/login/"):
        fresh = Client()
        for accept, status in [
            ("application/json, text/html", 401),
            ("text/html;q=0.1, application/json", 401),  # in header order on Django < 5.2
            ("text/html;q=0", 401),
            ("text/html;q=0.9, application/json;q=0.5", 302),
            ("*/*", 401),
        ]:
            reply = fresh.get("/me", headers={"Accept": accept})
            assert reply.status_code == status, accept
            assert "Accept" in reply.headers["Vary"]
        head = fresh.head("/me", headers=HTML)
        assert head.status_code == 302
        assert head.headers["Cache-Control"] == "no-store"


def test_only_a_missing_identity_is_sent_to_log_in(client: Client) -> None:
    with override_settings(AUTHGATE_LOGIN_URL="/login/"):
        down = Client().get("/store-down", headers=HTML)
    assert down.status_code == 503  # a login would not help: the store is down
    assert down.headers["Retry-After"] == "7"


def test_the_login_url_may_be_a_url_name(client: Client) -> None:
    with override_settings(AUTHGATE_LOGIN_URL="authgate-auth"):
        reply = Client().get("/me", headers=HTML)
    assert reply.status_code == 302
    assert reply.headers["Location"].startswith("/accounts/")


def test_the_login_redirect_is_only_for_pages(client: Client) -> None:
    with override_settings(AUTHGATE_LOGIN_URL="/login/?from=app"):
        fresh = Client()
        # an API client: JSON first, a bearer credential, or a write
        assert fresh.get("/me", headers={"Accept": "application/json"}).status_code == 401
        assert fresh.get("/me").status_code == 401  # no Accept: not a browser
        assert fresh.get("/me", headers={**HTML, **_bearer("x.y.z")}).status_code == 401
        assert fresh.post("/me", headers=HTML).status_code == 401
        # a page: redirected, the login URL's own query kept
        reply = fresh.get("/me", headers=HTML)
        assert reply.headers["Location"] == "/login/?from=app&next=/me"
        # a refusal for a signed-in user stays a 403: a login would not help
        token = _token(client, "alice")
        assert fresh.get("/admin", headers={**HTML, **_bearer(token)}).status_code == 403


@pytest.mark.parametrize(
    "page", ["//evil.example/x", "/\\evil.example/x", "///evil.example", "/%2F%2Fevil.example"]
)
def test_next_never_points_off_site(page: str) -> None:
    location = BrowserRules(login_url="/login/").login_location(page)
    assert location is not None and location.startswith("/login/")
    _, _, query = location.partition("?")
    for target in [value for key, value in parse_qsl(query) if key == "next"]:
        # what a login page would redirect to once signed in: a path of this site
        assert url_has_allowed_host_and_scheme(target, allowed_hosts={"testserver"})
        assert target.startswith("/") and not target.startswith(("//", "/\\"))


# --- class-based views ----------------------------------------------------------------


def test_permission_and_role_mixins(client: Client) -> None:
    alice, olga = _token(client, "alice"), _token(client, "olga")
    assert client.get("/reports").status_code == 401
    denied = client.get("/reports", headers=_bearer(alice))
    assert denied.status_code == 403
    assert denied.json()["detail"] == "requires reports:read permission"
    assert client.get("/reports", headers=_bearer(olga)).json() == {"page": "reports"}
    assert client.get("/operators", headers=_bearer(alice)).status_code == 403
    assert client.get("/operators", headers=_bearer(olga)).status_code == 200
    admin = _token(client, ADMIN, ADMIN_PW)
    assert client.get("/operators", headers=_bearer(admin)).status_code == 200  # ranks above
    assert client.get("/signed").status_code == 401
    assert client.get("/signed", headers=_bearer(alice)).status_code == 200


def test_a_mixin_with_nothing_required_refuses_to_serve(client: Client) -> None:
    with pytest.raises(TypeError, match="Unset sets no policy"):
        client.get("/unset", headers=_bearer(_token(client, "alice")))
    with pytest.raises(TypeError, match="sets no permission_required"):
        PermissionRequiredMixin().get_policy()


def test_the_object_mixin_checks_the_loaded_object(client: Client) -> None:
    alice = _bearer(_token(client, "alice"))
    assert client.get("/note", headers=alice).json() == {"owner": "alice"}
    admin = _token(client, ADMIN, ADMIN_PW)
    assert client.get("/note", headers=_bearer(admin)).status_code == 200
    olga = _bearer(_token(client, "olga"))
    refused = client.get("/note", headers=olga)
    assert refused.status_code == 403
    assert "requires" in refused.json()["detail"]


def test_a_views_own_get_object_is_checked_too(client: Client) -> None:
    assert client.get("/own-loader", headers=_bearer(_token(client, "olga"))).status_code == 403
    assert client.get("/own-loader", headers=_bearer(_token(client, "alice"))).status_code == 200
    CallsSuperView.calls = 0
    assert client.get("/calls-super", headers=_bearer(_token(client, "olga"))).status_code == 403
    assert client.get("/calls-super", headers=_bearer(_token(client, "alice"))).status_code == 200
    assert CallsSuperView.calls == 2  # once per request


def test_a_hidden_object_answers_as_a_missing_one(client: Client) -> None:
    olga = _bearer(_token(client, "olga"))
    hidden = client.get("/hidden-note", headers=olga)
    missing = client.get("/hidden-note?id=2", headers=olga)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.content == missing.content
    assert hidden.headers["Content-Type"] == missing.headers["Content-Type"]


# --- the HTTP API's URLs --------------------------------------------------------------


def test_the_api_answers_under_the_prefix_it_is_included_at(client: Client) -> None:
    token = _token(client, "alice")
    me = client.get("/accounts/auth/me", headers=_bearer(token))
    assert me.status_code == 200
    assert me.json()["username"] == "alice"
    assert client.get("/auth/me", headers=_bearer(token)).status_code == 404  # not mounted there
    logout = client.post("/accounts/auth/logout", headers=_bearer(token))
    assert logout.status_code == 204
    assert "Content-Type" not in logout.headers
    assert client.get("/accounts/auth/me", headers=_bearer(token)).status_code == 401


def test_the_api_needs_no_csrf_token_and_refuses_malformed_bodies(client: Client) -> None:
    with override_settings(MIDDLEWARE=[*MIDDLEWARE_WITH_CSRF]):
        _csrf_exempt_api(client)


MIDDLEWARE_WITH_CSRF = [
    "django.middleware.csrf.CsrfViewMiddleware",
    "authgate.integrations.django.AuthGateMiddleware",
]


def _csrf_exempt_api(client: Client) -> None:
    strict = Client(enforce_csrf_checks=True)
    assert strict.post("/me").status_code == 403  # Django's CSRF check is on
    bad = strict.post("/accounts/auth/login", b"{", content_type="application/json")
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid_request"
    admin = _token(client, ADMIN, ADMIN_PW)
    made = strict.post(
        "/accounts/api/users/",
        {"username": "zed", "password": PW, "role": "viewer", "password_hash": "x"},
        content_type="application/json",
        headers=_bearer(admin),
    )
    assert made.status_code == 400  # unknown field: no mass assignment
    assert get_gate().store.get_user("zed") is None


def test_the_api_bounds_the_body_it_reads(client: Client) -> None:
    from django.test import RequestFactory

    from authgate.api import too_large
    from authgate.integrations.django.urls import serve

    refused = too_large()
    big = b'{"username": "' + b"a" * 70_000 + b'"}'
    reply = client.post("/accounts/auth/login", big, content_type="application/json")
    assert (reply.status_code, reply.content) == (refused.status, refused.body)
    for length in ("-1", "abc"):
        odd = client.post(
            "/accounts/auth/login", b"{}", content_type="application/json", CONTENT_LENGTH=length
        )
        assert (odd.status_code, odd.content) == (refused.status, refused.body), length
    # no Content-Length (a chunked body): read up to the bound, then refused
    request = RequestFactory().post("/accounts/auth/login", big, content_type="application/json")
    del request.META["CONTENT_LENGTH"]
    request.authgate = get_gate()  # type: ignore[attr-defined]
    assert serve(request, "auth/login").content == refused.body


def test_the_api_without_the_middleware_says_what_is_missing(client: Client) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from authgate.integrations.django.urls import serve

    with pytest.raises(ImproperlyConfigured, match="AuthGateMiddleware"):
        serve(HttpRequest(), "auth/me")


# --- settings -------------------------------------------------------------------------


def test_settings_py_overrides_the_environment(env: dict[str, str]) -> None:
    with override_settings(
        AUTHGATE_MAX_LOGIN_ATTEMPTS=3,
        AUTHGATE_HIDE_OBJECTS=True,
        AUTHGATE_ROLES=["reader", "editor", "admin"],
    ):
        settings = get_gate().settings
        assert settings.max_login_attempts == 3
        assert settings.hide_objects is True
        assert settings.roles == ("reader", "editor", "admin")
        assert get_gate() is get_gate()  # one gate per configuration
    assert get_gate().settings.hide_objects is False


def test_settings_py_refuses_typos_and_odd_values(env: dict[str, str]) -> None:
    from django.core.exceptions import ImproperlyConfigured

    with (
        override_settings(AUTHGATE_SECRT_KEY="x"),
        pytest.raises(
            ImproperlyConfigured,
            match="AUTHGATE_SECRT_KEY is not an authgate setting; did you mean",
        ),
    ):
        get_gate()
    with (
        override_settings(AUTHGATE_ROLES={"a": 1}),
        pytest.raises(ImproperlyConfigured, match="AUTHGATE_ROLES must be"),
    ):
        get_gate()
    with override_settings(AUTHGATE_SECRET_KEY=SECRET.encode() + b"-bytes"):
        assert get_gate().settings.secret_key == SECRET + "-bytes"
    with override_settings(AUTHGATE_POLICY=POLICY):  # the object itself, not its path
        assert get_gate().policy is POLICY
    with (
        override_settings(AUTHGATE_POLICY=f"{__name__}.ADMIN"),
        pytest.raises(ImproperlyConfigured, match="must be a RolePolicy"),
    ):
        get_gate()


def test_a_gate_per_policy(env: dict[str, str]) -> None:
    with override_settings(AUTHGATE_POLICY=f"{__name__}.POLICY"):
        with_policy = get_gate()
    assert get_gate() is not with_policy
    assert with_policy.policy is POLICY


def test_the_realm_reaches_the_apis_answers_too(client: Client) -> None:
    with override_settings(AUTHGATE_REALM="reports"):
        reply = Client().get("/accounts/auth/me")
    assert reply.status_code == 401
    assert reply.headers["WWW-Authenticate"] == 'Bearer realm="reports"'


def test_the_system_check_names_a_missing_middleware() -> None:
    from authgate.integrations.django.apps import check_middleware

    assert check_middleware() == []
    with override_settings(MIDDLEWARE=["django.middleware.common.CommonMiddleware"]):
        errors = check_middleware()
    assert [e.id for e in errors] == ["authgate.E001"]


def test_a_weak_secret_in_settings_py_is_refused(env: dict[str, str]) -> None:
    from authgate.errors import ConfigError

    with override_settings(AUTHGATE_SECRET_KEY="secret"), pytest.raises(ConfigError):
        get_gate()


# --- Django's ASGI handler ------------------------------------------------------------


def test_the_asgi_handler_runs_the_same_middleware(client: Client) -> None:
    import examples.django_app.asgi as project

    token = _token(client, "alice")
    app: Any = project.app

    async def calls() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            return [await c.get("/me"), await c.get("/me", headers=_bearer(token))]

    with override_settings(ROOT_URLCONF=__name__):
        anonymous, alice = asyncio.run(calls())
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == 'Bearer realm="authgate"'
    assert alice.json() == {"request": "alice", "proxy": "alice", "hiding": False}


# --- manage.py ------------------------------------------------------------------------


def _manage(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}
    return subprocess.run(
        [sys.executable, str(MANAGE), *args],
        env={**inherited, **env, "DJANGO_SETTINGS_MODULE": "examples.django_app.settings"},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_manage_py_authgate_runs_the_cli_on_the_projects_store(env: dict[str, str]) -> None:
    made = _manage(
        env,
        "authgate",
        "users",
        "create",
        "carol",
        "--role",
        "operator",
        "--password-stdin",
        stdin=PW + "\n",
    )
    assert made.returncode == 0, made.stderr
    listed = _manage(env, "authgate", "users", "list")
    assert listed.returncode == 0, listed.stderr
    assert "carol" in listed.stdout
    with override_settings(ROOT_URLCONF=__name__):
        user = get_gate().store.get_user("carol")
    assert user is not None and user.roles == {"operator"}
    # The project's own policy applies: an unknown role is refused, and says so.
    refused = _manage(
        env, "authgate", "users", "create", "dave", "--role", "wizard", "--no-password"
    )
    assert refused.returncode == 1
    assert "wizard" in refused.stderr and "Traceback" not in refused.stderr
    assert refused.stderr.startswith("Error: ")
    missing = _manage(env, "authgate", "users", "show", "nobody")
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    usage = _manage(env, "authgate", "users", "frobnicate")
    assert usage.returncode == 2 and "Traceback" not in usage.stderr
    # Django's own --settings is Django's, not a click option
    settings = _manage(env, "authgate", "--settings=examples.django_app.settings", "users", "list")
    assert settings.returncode == 0, settings.stderr
    # no secret key: said in one line
    unset = _manage({**env, "AUTHGATE_SECRET_KEY": ""}, "authgate", "users", "list")
    assert unset.returncode == 1 and "Traceback" not in unset.stderr
    assert "AUTHGATE_SECRET_KEY" in unset.stderr
    helped = _manage(env, "authgate", "--help")
    assert helped.returncode == 0 and "users" in helped.stdout


def test_call_command_runs_the_same_commands(env: dict[str, str]) -> None:
    from io import StringIO

    from django.core.management import CommandError, call_command

    with override_settings(ROOT_URLCONF=__name__):
        get_gate().ensure_superuser()
        out = StringIO()
        call_command("authgate", "users", "list", stdout=out)
        assert ADMIN in out.getvalue()
        with pytest.raises(CommandError, match="nobody"):
            call_command("authgate", "users", "show", "nobody", stderr=StringIO())


def test_runserver_serves_through_the_middleware(env: dict[str, str]) -> None:
    """``manage.py runserver`` (which no WSGI wrapper would see) answers as gunicorn does."""
    port = free_port()
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}
    server = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "examples" / "django_app" / "manage.py"),
            "runserver",
            "--noreload",
            f"127.0.0.1:{port}",
        ],
        env={**inherited, **env},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        reply = _poll(f"http://127.0.0.1:{port}/protected")
        assert reply.status_code == 401
        assert reply.headers["www-authenticate"] == 'Bearer realm="authgate"'
        assert reply.json()["error"] == "not_authenticated"
        login = httpx.post(
            f"http://127.0.0.1:{port}/auth/login", json={"username": ADMIN, "password": ADMIN_PW}
        )
        token = login.json()["access_token"]
        me = httpx.get(f"http://127.0.0.1:{port}/protected", headers=_bearer(token))
        assert me.json() == {"message": f"hello, {ADMIN}"}
    finally:
        server.terminate()
        server.wait(timeout=30)


def _poll(url: str) -> httpx.Response:
    deadline = time.monotonic() + 60
    while True:
        try:
            return httpx.get(url, timeout=5)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


# --- browser sessions -----------------------------------------------------------------


@pytest.fixture
def browser(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    """Django's test client with cookie sessions on and a login page to go to."""
    monkeypatch.setenv("AUTHGATE_COOKIE_SESSIONS", "true")
    NOTES.clear()
    with override_settings(
        ROOT_URLCONF=__name__, AUTHGATE_POLICY=f"{__name__}.POLICY", AUTHGATE_LOGIN_URL="/login/"
    ):
        gate = get_gate()
        gate.ensure_superuser()
        gate.create_user("alice", PW, roles=["viewer"])
        yield Client()


def test_a_browser_logs_in_with_a_cookie_and_posts_with_its_token(browser: Client) -> None:
    reply = browser.post(
        "/accounts/auth/session",
        {"username": "alice", "password": PW},
        content_type="application/json",
    )
    assert reply.status_code == 200, reply.content
    set_cookies = reply.cookies
    session = set_cookies["__Host-authgate_session"]
    assert session["httponly"] and session["secure"] and session["samesite"] == "Lax"
    assert "__Host-authgate_csrf" in set_cookies  # two cookies, two headers
    token = reply.json()["csrf_token"]
    assert browser.get("/me").json()["request"] == "alice"
    refused = browser.post("/notes", {"text": "forged"})  # multipart, as a form posts
    assert refused.status_code == 403 and refused.json()["error"] == "csrf_failed"
    assert NOTES == []
    done = browser.post("/notes", {"text": "mine", "csrf_token": token})
    assert done.status_code == 200 and NOTES == ["mine"]
    form = browser.post(
        "/notes",
        "text=urlencoded&csrf_token=" + token,
        content_type="application/x-www-form-urlencoded",
    )
    assert form.status_code == 200 and NOTES == ["mine", "urlencoded"]
    out = browser.post("/accounts/auth/logout", {"csrf_token": token, "next": "/signed"})
    assert out.status_code == 303 and out.headers["Location"] == "/signed"
    assert str(out.cookies["__Host-authgate_session"]["max-age"]) == "0"
    assert browser.get("/me", headers=HTML).status_code == 302


def test_a_django_page_without_a_session_goes_to_the_login_page(browser: Client) -> None:
    reply = browser.get("/me?x=1", headers=HTML)
    assert reply.status_code == 302 and reply.headers["Location"] == "/login/?next=/me%3Fx%3D1"
    assert browser.get("/me").status_code == 401


def test_a_django_login_form_needs_the_pre_login_token(browser: Client) -> None:
    form = {"username": "alice", "password": PW, "next": "/me"}
    assert browser.post("/accounts/auth/session", form).status_code == 303  # multipart too
    urlencoded = "username=alice&password=" + PW.replace(" ", "+") + "&next=/me"
    kind = "application/x-www-form-urlencoded"
    refused = browser.post("/accounts/auth/session", urlencoded, content_type=kind)
    assert refused.status_code == 303 and "error=csrf_failed" in refused.headers["Location"]
    assert "__Host-authgate_session" not in refused.cookies
    token = browser.get("/accounts/auth/csrf").json()["csrf_token"]
    done = browser.post(
        "/accounts/auth/session", f"{urlencoded}&csrf_token={token}", content_type=kind
    )
    assert done.status_code == 303 and done.headers["Location"] == "/me"
    assert browser.get("/me").json()["request"] == "alice"
