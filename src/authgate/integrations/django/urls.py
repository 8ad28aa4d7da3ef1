"""The HTTP API (``/auth/...``, ``/api/users/...``) as URL patterns::

    urlpatterns = [path("", include("authgate.integrations.django.urls")), ...]

Under a prefix (``path("accounts/", include(...))``) the API answers there.  The views
are exempt from Django's CSRF check: they take bearer tokens and JSON, not Django's
session cookie.
"""

from __future__ import annotations

from weakref import WeakKeyDictionary

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.urls import re_path
from django.views.decorators.csrf import csrf_exempt

from ...api import MAX_BODY, ApiRequest, HttpApi, too_large
from ...gate import Gate
from ...http import not_found, request_address
from ...identity import ANONYMOUS, Client
from ...middleware.wsgi import environ_headers
from . import realm, to_response

__all__ = ["serve", "urlpatterns"]

_apis: WeakKeyDictionary[Gate, HttpApi] = WeakKeyDictionary()


@csrf_exempt
def serve(request: HttpRequest, path: str) -> HttpResponse:
    """Answer one request of the HTTP API (`path` is the API's path, ``auth/login``)."""
    gate: Gate | None = getattr(request, "authgate", None)
    if gate is None:
        raise ImproperlyConfigured(
            "authgate's URLs need its middleware: add "
            '"authgate.integrations.django.AuthGateMiddleware" to MIDDLEWARE'
        )
    api = _apis.get(gate)
    if api is None or api.realm != realm():
        api = _apis[gate] = HttpApi.for_gate(gate, realm=realm())
    meta = request.META
    try:
        length = int(meta.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = -1
    if length < 0 or length > MAX_BODY:
        return to_response(too_large())
    # Read here, within authgate's bound, not through request.body (bounded by
    # DATA_UPLOAD_MAX_MEMORY_SIZE, which a project may lift, and refused in HTML),
    # unless the middleware read it already, for a form's CSRF field.
    read: bytes | None = getattr(request, "_body", None)
    body = read if read is not None else request.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:  # a body with no Content-Length (chunked)
        return to_response(too_large())
    answer = gate.run(
        api.answer(
            ApiRequest(
                method=request.method or "GET",
                path="/" + path,
                identity=getattr(request, "identity", ANONYMOUS),
                body=body,
                query=request.GET.dict(),
                client=Client(
                    request_address(meta.get("REMOTE_ADDR")), meta.get("HTTP_USER_AGENT", "")
                ),
                authorization=meta.get("HTTP_AUTHORIZATION", ""),
                if_match=meta.get("HTTP_IF_MATCH", ""),
                headers=environ_headers(meta),
            )
        )
    )
    return to_response(answer or not_found())


urlpatterns = [
    re_path(r"^(?P<path>auth/.+)$", serve, name="authgate-auth"),
    re_path(r"^(?P<path>api/users(?:/.*)?)$", serve, name="authgate-users"),
]
