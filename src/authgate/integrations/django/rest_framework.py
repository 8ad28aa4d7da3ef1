"""Django REST framework: authgate's identity as ``request.user``, its policies as DRF
permission classes, its errors in DRF's answers.

::

    # settings.py (beside the Django integration's middleware)
    REST_FRAMEWORK = {
        "DEFAULT_AUTHENTICATION_CLASSES": [
            "authgate.integrations.django.rest_framework.AuthGateAuthentication"
        ],
        "UNAUTHENTICATED_USER": "authgate.integrations.django.rest_framework.anonymous",
        "EXCEPTION_HANDLER": "authgate.integrations.django.rest_framework.exception_handler",
    }

    # views.py
    from authgate.integrations.django.rest_framework import (
        object_permission, permission_required, role_required,
    )

    class Reports(APIView):
        permission_classes = [permission_required("reports:read")]

    class Notes(RetrieveUpdateAPIView):
        permission_classes = [role_required("viewer") & object_permission(IS_OWNER)]

A permission class judges the identity with an authgate `Policy` and answers True or
False, as DRF expects (so ``&``, ``|`` and ``~`` compose them); a refusal is DRF's 401
(with ``WWW-Authenticate``) for a caller with no identity, or its 403, whose ``detail``
says what was required.  As in DRF, a class that judges requests only
(``role_required``...) answers yes for any object: ``role_required("viewer") &
object_permission(owner)`` is "a viewer who owns it", while ``role_required("editor")
| object_permission(owner)`` admits any editor to every object.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from django.core.exceptions import ImproperlyConfigured
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from ...errors import AuthGateError
from ...http import error_response
from ...identity import ANONYMOUS, Identity
from ...permissions import HasPermission, HasRole, IsAuthenticated, Policy
from ...permissions.objects import decide, object_verdict
from . import realm

__all__ = [
    "AuthGateAuthentication",
    "PolicyPermission",
    "anonymous",
    "exception_handler",
    "object_permission",
    "permission_required",
    "policy_required",
    "role_required",
]

#: The object action a request's method asks for, when a class names none.
METHOD_ACTIONS = {
    "GET": "read",
    "HEAD": "read",
    "OPTIONS": "read",
    "POST": "create",
    "PUT": "update",
    "PATCH": "update",
    "DELETE": "delete",
}


class AuthGateAuthentication(BaseAuthentication):
    """The identity authgate's middleware proved, as ``request.user`` (``request.auth``
    is None): an access token or an API key, checked once, by the middleware."""

    def authenticate(self, request: Request) -> tuple[Identity, None] | None:
        identity: Identity | None = getattr(request._request, "identity", None)
        if identity is None:
            raise ImproperlyConfigured(
                "AuthGateAuthentication reads the identity authgate's middleware sets: "
                'add "authgate.integrations.django.AuthGateMiddleware" to MIDDLEWARE'
            )
        return (identity, None) if identity.is_authenticated else None

    def authenticate_header(self, request: Request) -> str:
        return f'Bearer realm="{realm()}"'


def anonymous() -> Identity:
    """DRF's ``UNAUTHENTICATED_USER``: authgate's anonymous identity (DRF's default is
    ``django.contrib.auth``'s, which needs its models installed)."""
    return ANONYMOUS


def _identity(request: Request) -> Identity:
    user = getattr(request, "user", None)
    return user if isinstance(user, Identity) else ANONYMOUS


class PolicyPermission(BasePermission):
    """A DRF permission judged by authgate: `policy` on every request, and on an
    object, `object_policy` (or, when None, the model's own hooks) for `object_action`
    (or, when None, the action the request's method asks for)."""

    policy: ClassVar[Policy] = IsAuthenticated()
    object_policy: ClassVar[Policy | None] = None
    object_action: ClassVar[str | None] = None
    check_objects: ClassVar[bool] = False
    #: What DRF's 403 says (set by the refusal).
    message: str = "permission denied"

    def has_permission(self, request: Request, view: Any) -> bool:
        identity = _identity(request)
        if self.policy.allows(identity):
            return True
        self.message = f"requires {self.policy.describe()}"
        return False

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        if not self.check_objects:
            return True  # this class judges requests only; object checks are others'
        identity = _identity(request)
        action = self.object_action or METHOD_ACTIONS.get(request.method or "", "read")
        if decide(object_verdict(identity, obj, action, self.object_policy)):
            return True
        policy = self.object_policy
        what = policy.describe() if policy is not None else f"permission to {action} it"
        self.message = f"{action} on this {type(obj).__name__} requires {what}"
        return False


def policy_required(policy: Policy) -> type[PolicyPermission]:
    """A permission class requiring `policy` on every request."""
    return type(f"Requires({policy.describe()})", (PolicyPermission,), {"policy": policy})


def role_required(*roles: str) -> type[PolicyPermission]:
    """A permission class requiring one of `roles` (or a role above it)."""
    return policy_required(HasRole(*roles))


def permission_required(*permissions: str) -> type[PolicyPermission]:
    """A permission class requiring every one of `permissions`."""
    return policy_required(HasPermission(*permissions))


def object_permission(
    policy: Policy | None = None, action: str | None = None
) -> type[PolicyPermission]:
    """A permission class for views with objects (``get_object``): an authenticated
    caller, allowed `action` (default: by the request's method) on the object by
    `policy`, or by the model's own hooks when None."""
    name = f"ObjectPermission({policy.describe() if policy else 'hooks'})"
    return type(
        name,
        (PolicyPermission,),
        {"object_policy": policy, "object_action": action, "check_objects": True},
    )


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's ``EXCEPTION_HANDLER``: an authgate error raised in a DRF view (a guard, a
    login) answered as authgate answers it; anything else as DRF does."""
    if isinstance(exc, AuthGateError):
        answer = error_response(exc, realm())
        headers = {k: v for k, v in answer.headers if k.lower() != "content-type"}
        return Response(json.loads(answer.body), status=answer.status, headers=headers)
    # Imported here: rest_framework.views reads DEFAULT_AUTHENTICATION_CLASSES, which
    # names this module, when it is first imported.
    from rest_framework.views import exception_handler as drf_exception_handler

    handled: Response | None = drf_exception_handler(exc, context)
    return handled
