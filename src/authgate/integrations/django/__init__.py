"""Django: a middleware, guards for function and class-based views, the HTTP API's URLs
and ``manage.py authgate``.

::

    # settings.py
    INSTALLED_APPS = [..., "authgate.integrations.django"]
    MIDDLEWARE = [..., "authgate.integrations.django.AuthGateMiddleware"]
    AUTHGATE_STORE = "sqlite:///authgate.db"   # any AUTHGATE_* setting; the environment too
    AUTHGATE_POLICY = "myproject.auth.POLICY"   # optional: a RolePolicy, or its dotted path
    AUTHGATE_LOGIN_URL = "login"                # optional: a URL or URL name, for pages
    AUTHGATE_REALM = "my-api"                   # optional: WWW-Authenticate's realm

    # urls.py
    urlpatterns = [path("", include("authgate.integrations.django.urls")), ...]

    # views.py
    from authgate import current_identity, require_role

    @require_role("admin")
    def admin(request):
        return JsonResponse({"hello": request.identity.username})

Settings come from the environment's ``AUTHGATE_*`` variables, with ``AUTHGATE_*``
names in ``settings.py`` on top (the same names, so one deployment can use either; a
name authgate does not know is refused, so a typo cannot pass unnoticed).  The
middleware sets ``request.identity`` (and `authgate.current_identity`, also while a
streamed response is produced), and answers authgate's errors as the HTTP API does:
JSON, 401 with ``WWW-Authenticate``, 403 with the reason, 429 with ``Retry-After``, 503
when the store is down.  With ``AUTHGATE_LOGIN_URL`` set, a page request (a GET that
prefers HTML to JSON) with no identity is redirected there instead, with ``?next=`` the
page, when that is a path of this site.

Views are sync (Django runs them in a thread under ASGI): the gate is the sync `Gate`.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextvars import copy_context
from dataclasses import replace
from typing import Any, ClassVar

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import resolve_url
from django.utils.cache import patch_vary_headers
from django.utils.module_loading import import_string

from ...audit import AuditLog, bind_audit_log
from ...browser import MAX_FORM, BrowserRules, BrowserVisit, form_field
from ...caches import CONFIGURED_GATES, LRU
from ...config import Settings
from ...context import current_identity as _current_identity
from ...context import set_identity, set_object_hiding, set_visit
from ...decorators import (
    check,
    check_fresh,
    check_object_permission,
    require,
    require_auth,
    require_fresh,
    require_object_permission,
    require_permission,
    require_role,
)
from ...errors import AuthGateError, ConfigError, NotFound
from ...gate import Gate
from ...http import ApiResponse, CredentialRules, error_response
from ...identity import ANONYMOUS, Identity
from ...middleware.wsgi import InContext, environ_refusal, identify_visit
from ...permissions import HasPermission, HasRole, IsAuthenticated, Policy, RolePolicy

__all__ = [
    "AuthGateMiddleware",
    "AuthRequiredMixin",
    "FreshLoginRequiredMixin",
    "IdentifiedRequest",
    "ObjectPermissionRequiredMixin",
    "PermissionRequiredMixin",
    "PolicyRequiredMixin",
    "RoleRequiredMixin",
    "check",
    "check_fresh",
    "check_object_permission",
    "current_identity",
    "get_gate",
    "realm",
    "require",
    "require_auth",
    "require_fresh",
    "require_object_permission",
    "require_permission",
    "require_role",
    "to_response",
]

#: The identity of the current request (anonymous outside one): the same proxy as
#: `authgate.current_identity`, in every framework.
current_identity: Identity = _current_identity

#: ``AUTHGATE_*`` names this integration reads itself (``settings.py``, else the
#: environment), not `authgate.config.Settings`.
_OWN_SETTINGS = ("AUTHGATE_POLICY", "AUTHGATE_LOGIN_URL", "AUTHGATE_REALM")

#: One gate per configuration (a test's ``override_settings`` makes another); a gate
#: pushed out is not closed, since a middleware may still serve with it.
_gates: LRU[tuple[Settings, RolePolicy | None], Gate] = LRU(CONFIGURED_GATES)
_gates_lock = threading.Lock()


def get_gate() -> Gate:
    """The `Gate` this project's settings describe: one per process, built on first use
    (and anew if the settings change, as in a test's ``override_settings``)."""
    try:
        # The integration's own names are read by it alone, from the environment too
        # (AUTHGATE_LOGIN_URL may be a URL name, which Django resolves).
        environ = {k: v for k, v in os.environ.items() if k not in _OWN_SETTINGS}
        settings = Settings.from_config(_settings_py(), environ, own=_OWN_SETTINGS)
    except ConfigError as err:
        raise ImproperlyConfigured(str(err)) from err
    policy = _policy()  # before the lock: importing it may ask for the gate too
    key = (settings, policy)
    gate = _gates.get(key)
    if gate is None:
        with _gates_lock:
            gate = _gates.get(key)
            if gate is None:
                gate = Gate(settings, policy=policy)
                _gates.put(key, gate)
    return gate


def _settings_py() -> dict[str, object]:
    names = [name for name in dir(django_settings) if name.startswith("AUTHGATE_")]
    return {name: getattr(django_settings, name, None) for name in names}


def _own(name: str) -> object:
    """One of this integration's settings: ``settings.py``, else the environment."""
    value = getattr(django_settings, name, None)
    return value if value is not None else os.environ.get(name) or None


def _policy() -> RolePolicy | None:
    value = _own("AUTHGATE_POLICY")
    if isinstance(value, str):
        value = import_string(value)
    if value is not None and not isinstance(value, RolePolicy):
        raise ImproperlyConfigured(
            f"AUTHGATE_POLICY must be a RolePolicy or its dotted path, not {type(value).__name__}"
        )
    return value


def realm() -> str:
    """The realm of ``WWW-Authenticate`` (``AUTHGATE_REALM``, default ``authgate``)."""
    return str(_own("AUTHGATE_REALM") or "authgate")


def to_response(answer: ApiResponse) -> HttpResponse:
    """An authgate answer as a Django response."""
    response = HttpResponse(answer.body, status=answer.status)
    del response.headers["Content-Type"]  # Django's default is text/html
    cookies = []
    for name, value in answer.headers:
        if name.lower() == "set-cookie":
            cookies.append(value)
        else:
            response.headers[name] = value
    set_cookies(response, cookies)
    return response


def set_cookies(response: HttpResponse, cookies: list[str]) -> None:
    """Set authgate's cookies (``Set-Cookie`` values) on a Django response, through
    Django's own cookie jar, which sends one header per cookie."""
    for cookie in cookies:
        if cookie.split("=", 1)[0] not in response.cookies:  # the answer's own wins
            response.cookies.load(cookie)


class IdentifiedRequest(HttpRequest):
    """A request the middleware has seen, for type checkers: annotate a view's
    ``request`` with it to read ``request.identity`` typed."""

    identity: Identity
    authgate: Gate


class AuthGateMiddleware:
    """Sets ``request.identity`` from the request's credentials (an access token or an
    API key), and answers authgate's errors, raised by a credential or a guard, as JSON
    (or, for a page with ``AUTHGATE_LOGIN_URL`` set, a redirect to the login page)."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.gate = get_gate()
        self.rules = CredentialRules.for_gate(self.gate)
        self._hide_objects = self.gate.settings.hide_objects

    def __call__(self, request: HttpRequest) -> HttpResponse:
        browser = self.rules.browser

        def form_token() -> str | None:
            """Django keeps what it read for the view: a small body whole, a large one
            (a form with files) parsed by Django's own bounded form parser."""
            assert browser is not None
            content_type = str(request.META.get("CONTENT_TYPE", ""))
            try:
                if int(request.META.get("CONTENT_LENGTH") or 0) <= MAX_FORM:
                    return form_field(request.body, content_type, browser.csrf_field)
                value = request.POST.get(browser.csrf_field)
            except Exception:  # a body Django refuses (too large, malformed): no token
                return None
            return value if isinstance(value, str) else None

        try:
            identity, visit = identify_visit(self.gate, request.META, self.rules, form_token)
        except AuthGateError as err:
            return self.answer(request, err)
        identified: IdentifiedRequest = request  # type: ignore[assignment]
        identified.identity = identity
        identified.authgate = self.gate
        # The view runs in a copy of the thread's context: nothing set here outlives
        # the request in a server's reused thread.
        response = copy_context().run(self._serve, request, identity, visit)
        if visit is not None:
            set_cookies(response, visit.set_cookies)
        return response

    def _serve(
        self, request: HttpRequest, identity: Identity, visit: BrowserVisit | None
    ) -> HttpResponse:
        set_identity(identity)
        set_object_hiding(self._hide_objects)
        set_visit(visit)
        bind_audit_log(self.gate.audit)
        response = self.get_response(request)
        if response.streaming:  # produced after this returns: in the same context
            streamed: Any = response
            streamed.streaming_content = (
                _produced_as(streamed, identity, self._hide_objects, self.gate.audit)
                if getattr(streamed, "is_async", False)
                else InContext(streamed.streaming_content, copy_context())
            )
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """Answer an authgate error a view (or its guard) raised; leave others to Django."""
        if isinstance(exception, AuthGateError):
            return self.answer(request, exception)
        return None

    def answer(self, request: HttpRequest, err: AuthGateError) -> HttpResponse:
        """The response to `err`: the login page for a page request with no identity
        when ``AUTHGATE_LOGIN_URL`` is set, authgate's JSON answer otherwise."""
        login_url = _own("AUTHGATE_LOGIN_URL") or self.gate.settings.login_url
        browser = self.rules.browser
        if not login_url and browser is None:
            return to_response(error_response(err, realm()))
        # A URL name ("login") becomes its URL; the core decides the rest.
        target = resolve_url(str(login_url)) if login_url else None
        rules = replace(browser or BrowserRules(), login_url=target)
        response = to_response(environ_refusal(request.META, err, realm(), rules))
        patch_vary_headers(response, ["Accept"])  # a 302 or a 401, by Accept
        return response


async def _produced_as(
    response: Any, identity: Identity, hide: bool, audit: AuditLog
) -> AsyncIterator[bytes]:
    """An async streamed body, produced with the request's identity.  Django's ASGI
    handler iterates it in the request's own task, so what is set here stays there."""
    set_identity(identity)
    set_object_hiding(hide)
    bind_audit_log(audit)
    async for chunk in response.streaming_content:
        yield chunk


def _preflight(view: object, request: HttpRequest) -> bool:
    """A CORS preflight the view answers with Django's own ``options`` (which tells
    the allowed methods, nothing else)."""
    from django.views import View

    return (
        request.method == "OPTIONS"
        and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in request.META
        and getattr(type(view), "options", None) is View.options
    )


def _before_the_view(cls: type, mixin: type) -> None:
    """Refuse a class that lists the mixin after Django's ``View``: ``View.dispatch``
    calls no ``super()``, so the guard would never run."""
    from django.views import View

    order = cls.__mro__
    if View in order and order.index(View) < order.index(mixin):
        raise TypeError(
            f"{cls.__name__} lists {mixin.__name__} after View, which would skip it: "
            f"put the mixin first, as in class {cls.__name__}({mixin.__name__}, View)"
        )


class PolicyRequiredMixin:
    """For class-based views: `policy` must allow the request's identity before the view
    dispatches (401 without one, 403 naming what was required otherwise).  List it
    before ``View`` (a class that does not is refused)."""

    policy: ClassVar[Policy | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _before_the_view(cls, PolicyRequiredMixin)

    def get_policy(self) -> Policy:
        """The policy this view requires (override to decide per request)."""
        if self.policy is None:
            raise TypeError(f"{type(self).__name__} sets no policy")
        return self.policy

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """Check the policy, then dispatch as the view would.  A CORS preflight (an
        ``OPTIONS`` with ``Access-Control-Request-Method``) answered by Django's own
        ``options`` passes."""
        if not _preflight(self, request):
            check(self.get_policy(), getattr(request, "identity", ANONYMOUS))
        dispatch: Callable[..., HttpResponse] = super().dispatch  # type: ignore[misc]
        return dispatch(request, *args, **kwargs)


class AuthRequiredMixin(PolicyRequiredMixin):
    """For class-based views: an authenticated identity (the mixin `require_auth`)."""

    def get_policy(self) -> Policy:
        """`IsAuthenticated`."""
        return IsAuthenticated()


class RoleRequiredMixin(PolicyRequiredMixin):
    """For class-based views: one of ``role_required`` (or a role above it)."""

    role_required: ClassVar[str | Sequence[str]] = ()

    def get_policy(self) -> Policy:
        """`HasRole` of ``role_required``."""
        roles = _names(self.role_required, "role_required", self)
        return HasRole(*roles)


class PermissionRequiredMixin(PolicyRequiredMixin):
    """For class-based views: every one of ``permission_required`` (Django's own name
    for it, so a view moving from ``django.contrib.auth`` keeps its attribute)."""

    permission_required: ClassVar[str | Sequence[str]] = ()

    def get_policy(self) -> Policy:
        """`HasPermission` of ``permission_required``."""
        permissions = _names(self.permission_required, "permission_required", self)
        return HasPermission(*permissions)


class FreshLoginRequiredMixin:
    """For class-based views: a login (or ``POST /auth/reauth``) within the last
    ``max_age`` seconds (the mixin `require_fresh`); 401
    ``insufficient_user_authentication`` otherwise.  List it before ``View``, and before
    or after the other mixins."""

    max_age: ClassVar[int] = 300

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _before_the_view(cls, FreshLoginRequiredMixin)

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """Check the login's age, then dispatch as the view would (a CORS preflight
        passes)."""
        if not _preflight(self, request):
            check_fresh(self.max_age, getattr(request, "identity", ANONYMOUS))
        dispatch: Callable[..., HttpResponse] = super().dispatch  # type: ignore[misc]
        return dispatch(request, *args, **kwargs)


def _names(value: str | Sequence[str], attribute: str, view: object) -> tuple[str, ...]:
    names = (value,) if isinstance(value, str) else tuple(value)
    if not names:
        raise TypeError(f"{type(view).__name__} sets no {attribute}")
    return names


class ObjectPermissionRequiredMixin:
    """For class-based views with ``get_object`` (``DetailView``, ``UpdateView``...):
    the identity must be allowed `object_action` on the object, by `object_policy` or
    the object's own hooks; 403, or, when objects are hidden (``AUTHGATE_HIDE_OBJECTS``,
    or `hide_objects`), Django's ``Http404``, as for a missing object."""

    object_action: ClassVar[str] = "read"
    object_policy: ClassVar[Policy | None] = None
    hide_objects: ClassVar[bool | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _before_the_view(cls, ObjectPermissionRequiredMixin)
        own = cls.__dict__.get("get_object")
        if own is not None:
            # A view's own get_object comes before the mixin's and may never call it:
            # check what it returns too (once: a super() call has checked already).
            @functools.wraps(own)
            def get_object(self: ObjectPermissionRequiredMixin, *args: Any, **kwargs: Any) -> Any:
                obj = own(self, *args, **kwargs)
                if self.__dict__.get("_authgate_checked", _UNCHECKED) is not obj:
                    self._check_object(obj)
                return obj

            cls.get_object = get_object  # type: ignore[method-assign]

    def get_object(self, *args: Any, **kwargs: Any) -> Any:
        """The view's object, once the identity may act on it."""
        get_object: Callable[..., Any] = super().get_object  # type: ignore[misc]
        obj = get_object(*args, **kwargs)
        self._check_object(obj)
        return obj

    def _check_object(self, obj: Any) -> None:
        request: HttpRequest = self.request  # type: ignore[attr-defined]
        try:
            check_object_permission(
                obj,
                self.object_action,
                self.object_policy,
                getattr(request, "identity", ANONYMOUS),
                hide=self.hide_objects,
            )
        except NotFound:  # answered as the view answers a missing object
            raise Http404() from None
        self.__dict__["_authgate_checked"] = obj


#: No object checked yet (None is an object a loader may return).
_UNCHECKED = object()
