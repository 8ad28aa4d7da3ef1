"""Django REST framework views guarded by authgate: ``request.user`` is the identity the
middleware proved, permission classes built from authgate policies, authgate's errors
in DRF's answers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("rest_framework")  # the core's tox env has neither Django nor DRF

import django
from django.test import Client, override_settings
from django.urls import include, path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_app.settings")
django.setup()

from rest_framework.generics import GenericAPIView  # noqa: E402 - needs Django set up
from rest_framework.request import Request  # noqa: E402
from rest_framework.response import Response  # noqa: E402
from rest_framework.views import APIView  # noqa: E402

from authgate import require_role  # noqa: E402
from authgate.integrations.django import get_gate  # noqa: E402
from authgate.integrations.django.rest_framework import (  # noqa: E402
    AuthGateAuthentication,
    object_permission,
    permission_required,
    role_required,
)
from authgate.permissions import HasRole, IsOwner, RolePolicy  # noqa: E402

SECRET = "drf-suite-secret-key-that-is-long-enough-for-it"
PW = "user password 1"
POLICY = RolePolicy({"operator": ["reports:read"], "admin": ["*:*"]})
OWNER = IsOwner(groups_attr=None)


class Note:
    def __init__(self, owner: str) -> None:
        self.owner = owner


class AuthGateView(APIView):
    """DRF reads DEFAULT_AUTHENTICATION_CLASSES when a view class is made (here, before
    the tests' settings): these views name it themselves."""

    authentication_classes = (AuthGateAuthentication,)


class Reports(AuthGateView):
    permission_classes = (permission_required("reports:read"),)

    def get(self, request: Request) -> Response:
        return Response({"user": request.user.username})  # type: ignore[union-attr]


class Notes(GenericAPIView[Any]):
    authentication_classes = (AuthGateAuthentication,)

    permission_classes: Any = (role_required("viewer") & object_permission(OWNER),)

    def get_object(self) -> Note:
        note = Note(owner="alice")
        self.check_object_permissions(self.request, note)
        return note

    def get(self, request: Request) -> Response:
        return Response({"owner": self.get_object().owner})

    def delete(self, request: Request) -> Response:
        self.get_object()
        return Response(status=204)


class Shared(Notes):
    """Admins, or the owner: `|` of two object-aware classes."""

    permission_classes = (object_permission(HasRole("admin")) | object_permission(OWNER),)


class OwnerOnly(Notes):
    """The owner only, for each method's action (read, delete)."""

    permission_classes = (object_permission(OWNER),)


class Guarded(AuthGateView):
    permission_classes = ()

    @require_role("admin")
    def get(self, request: Request) -> Response:
        return Response({"page": "admin"})


urlpatterns = [
    path("", include("authgate.integrations.django.urls")),
    path("reports", Reports.as_view()),
    path("notes", Notes.as_view()),
    path("shared", Shared.as_view()),
    path("owned", OwnerOnly.as_view()),
    path("guarded", Guarded.as_view()),
]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "authgate.integrations.django.rest_framework.AuthGateAuthentication"
    ],
    "UNAUTHENTICATED_USER": "authgate.integrations.django.rest_framework.anonymous",
    "EXCEPTION_HANDLER": "authgate.integrations.django.rest_framework.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
}


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    for key, value in {
        "AUTHGATE_STORE": f"sqlite:///{tmp_path / 'authgate.db'}",
        "AUTHGATE_SECRET_KEY": SECRET,
        "AUTHGATE_ARGON2_TIME_COST": "1",
        "AUTHGATE_ARGON2_MEMORY_COST": "8",
        "AUTHGATE_ARGON2_PARALLELISM": "1",
        "AUTHGATE_LOG_FORMAT": "none",
    }.items():
        monkeypatch.setenv(key, value)
    with override_settings(
        ROOT_URLCONF=__name__, AUTHGATE_POLICY=POLICY, REST_FRAMEWORK=REST_FRAMEWORK
    ):
        gate = get_gate()
        for name, role in (("alice", "viewer"), ("olga", "operator"), ("root", "admin")):
            gate.create_user(name, PW, roles=[role])
        yield Client()


def _as(client: Client, username: str) -> dict[str, str]:
    reply = client.post(
        "/auth/login", {"username": username, "password": PW}, content_type="application/json"
    )
    assert reply.status_code == 200, reply.content
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


def test_request_user_is_the_identity_and_the_policy_decides(client: Client) -> None:
    assert client.get("/reports", headers=_as(client, "olga")).json() == {"user": "olga"}
    refused = client.get("/reports", headers=_as(client, "alice"))
    assert refused.status_code == 403
    assert refused.json() == {"detail": "requires reports:read permission"}


def test_no_identity_is_drfs_401_with_authgates_challenge(client: Client) -> None:
    reply = client.get("/reports")
    assert reply.status_code == 401
    assert reply.headers["WWW-Authenticate"] == 'Bearer realm="authgate"'
    bad = client.get("/reports", headers={"Authorization": "Bearer x.y.z"})
    assert bad.status_code == 401  # the middleware's answer, before DRF
    assert bad.json()["error"] == "invalid_token"


def test_object_permissions_judge_the_object(client: Client) -> None:
    assert client.get("/notes", headers=_as(client, "alice")).json() == {"owner": "alice"}
    assert client.get("/notes", headers=_as(client, "olga")).status_code == 403
    assert client.get("/notes").status_code == 401
    # One class says what was required (DRF's & and | say only their own message);
    # the method names the action: deleting is checked as "delete".
    other = client.get("/owned", headers=_as(client, "olga"))
    assert other.status_code == 403
    assert other.json()["detail"] == ("read on this Note requires ownership of the object")
    deleting = client.delete("/owned", headers=_as(client, "olga"))
    assert deleting.json()["detail"].startswith("delete on this Note requires")
    assert client.delete("/owned", headers=_as(client, "alice")).status_code == 204


def test_or_of_object_aware_classes_needs_one_to_allow_the_object(client: Client) -> None:
    assert client.get("/shared", headers=_as(client, "alice")).status_code == 200  # owner
    assert client.get("/shared", headers=_as(client, "root")).status_code == 200  # admin
    assert client.get("/shared", headers=_as(client, "olga")).status_code == 403  # neither
    assert client.get("/shared").status_code == 401


def test_an_authgate_guard_in_a_drf_view_answers_as_authgate(client: Client) -> None:
    refused = client.get("/guarded", headers=_as(client, "alice"))
    assert refused.status_code == 403
    assert refused.json() == {"error": "forbidden", "detail": "requires admin role"}
    anonymous = client.get("/guarded")
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == 'Bearer realm="authgate"'
    assert client.get("/guarded", headers=_as(client, "root")).json() == {"page": "admin"}


def test_the_authentication_class_needs_the_middleware(client: Client) -> None:
    from django.core.exceptions import ImproperlyConfigured
    from django.http import HttpRequest

    with pytest.raises(ImproperlyConfigured, match="AuthGateMiddleware"):
        AuthGateAuthentication().authenticate(Request(HttpRequest()))


def test_the_default_authentication_setting_imports_cleanly() -> None:
    """Named in DEFAULT_AUTHENTICATION_CLASSES, the module is imported while DRF's views
    module is: it must not need that module at import."""
    import subprocess
    import sys

    program = """
import django
from django.conf import settings
settings.configure(REST_FRAMEWORK={"DEFAULT_AUTHENTICATION_CLASSES": [
    "authgate.integrations.django.rest_framework.AuthGateAuthentication"]})
django.setup()
from rest_framework.views import APIView
print(APIView.authentication_classes[0].__name__)
"""
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "AuthGateAuthentication"
