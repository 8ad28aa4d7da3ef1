"""FastAPI: dependencies, and the security schemes and refusals for the OpenAPI document.

::

    from fastapi import Depends, FastAPI, Security
    from authgate import AsyncGate, Identity
    from authgate.integrations.fastapi import AuthGate, current_identity, require_role

    app = FastAPI()
    AuthGate(AsyncGate.from_env()).install(app)

    @app.get("/admin", dependencies=[Depends(require_role("admin"))],
             responses=error_responses(403))
    async def admin(me: Identity = Depends(current_identity)): ...

    @app.get("/reports")
    async def reports(me: Identity = Security(current_identity, scopes=["reports:read"])): ...

Every dependency declares two security schemes, either of which a request may use:
``HTTPBearer`` (paste a token or API key) and ``OAuth2PasswordBearer``, whose password
flow logs in at ``POST /auth/token``: ``/docs``'s "Authorize" takes a username and
password.  `AuthGate.install` also adds authgate's own routes (``/auth/...``,
``/api/users/...``) to ``app.openapi()``, under the same schemes, with every status
each can answer and ``If-Match`` on the user writes (`authgate.openapi`);
`error_responses` documents an app's own routes' refusals the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request, Security
from fastapi.security import (
    HTTPAuthorizationCredentials,
    HTTPBearer,
    OAuth2PasswordBearer,
    SecurityScopes,
)

from ..api import HttpApi
from ..decorators import check, check_fresh
from ..identity import ANONYMOUS, Identity
from ..openapi import error_responses, merge, oauth2_flow
from ..permissions import HasPermission, HasRole, IsAuthenticated, Policy
from .starlette import AuthGate as _StarletteAuthGate

__all__ = [
    "AuthGate",
    "bearer_scheme",
    "current_identity",
    "error_responses",
    "include_in_openapi",
    "oauth2_scheme",
    "require",
    "require_auth",
    "require_fresh",
    "require_permission",
    "require_role",
]

#: The OpenAPI security schemes (``auto_error=False``: the middleware decides): a
#: bearer token, or one the OAuth2 password flow logs in for (its token URL is the
#: API's, set by `include_in_openapi`).
bearer_scheme = HTTPBearer(auto_error=False, description="An authgate access token")
oauth2_scheme = OAuth2PasswordBearer(
    "/auth/token", auto_error=False, description="Log in with a username and password"
)
_OAUTH2 = oauth2_scheme.scheme_name


class AuthGate(_StarletteAuthGate):
    """The Starlette `AuthGate`, whose `install` also describes authgate's routes in
    the app's OpenAPI document."""

    def install(self, app: Any) -> None:
        """Add the middleware, routes and handler, and the routes to ``app.openapi()``."""
        super().install(app)
        if isinstance(app, FastAPI):
            include_in_openapi(app, HttpApi.for_gate(self.gate))


def include_in_openapi(app: FastAPI, api: HttpApi) -> None:
    """Make ``app.openapi()`` (and ``/docs``) list `api`'s operations, secured by the
    same schemes as the dependencies here."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:  # FastAPI builds the document once, then caches it
            document = build()
            merge(document, api, scheme=bearer_scheme.scheme_name, oauth2_scheme=_OAUTH2)
            schemes = document["components"]["securitySchemes"]
            schemes[bearer_scheme.scheme_name] = bearer_scheme.model.model_dump(
                mode="json", by_alias=True, exclude_none=True
            )
            schemes[_OAUTH2] = oauth2_flow(api)  # the token URL under the API's prefix
            app.openapi_schema = document
        return app.openapi_schema

    documented: Any = app  # FastAPI's documented idiom replaces the openapi method
    documented.openapi = openapi


def current_identity(
    request: Request,
    security_scopes: SecurityScopes,
    _credentials: HTTPAuthorizationCredentials | None = Security(bearer_scheme),
    _token: str | None = Security(oauth2_scheme),
) -> Identity:
    """The request's identity (anonymous when none).  Used with ``Security(...,
    scopes=[...])`` it requires every scope: a role the identity holds (itself or
    through a role that includes it), or a permission it is granted."""
    identity: Identity = request.scope.get("user", ANONYMOUS)
    if security_scopes.scopes:
        check(_scopes_policy(security_scopes.scopes), identity)
    return identity


def _scopes_policy(scopes: list[str]) -> Policy:
    policy: Policy = IsAuthenticated()
    for scope in scopes:
        policy = policy & (HasPermission(scope) if ":" in scope else HasRole(scope))
    return policy


def require(policy: Policy) -> Callable[..., Identity]:
    """A dependency that enforces `policy` and returns the identity."""

    def dependency(
        request: Request,
        _credentials: HTTPAuthorizationCredentials | None = Security(bearer_scheme),
        _token: str | None = Security(oauth2_scheme),
    ) -> Identity:
        return check(policy, request.scope.get("user", ANONYMOUS))

    return dependency


def require_auth() -> Callable[..., Identity]:
    """A dependency that requires an authenticated identity."""
    return require(IsAuthenticated())


def require_role(*roles: str) -> Callable[..., Identity]:
    """A dependency that requires one of `roles` (or a higher one)."""
    return require(HasRole(*roles))


def require_permission(*permissions: str) -> Callable[..., Identity]:
    """A dependency that requires every one of `permissions`."""
    return require(HasPermission(*permissions))


def require_fresh(max_age: int = 300) -> Callable[..., Identity]:
    """A dependency that requires a login (or ``POST /auth/reauth``) within the last
    `max_age` seconds (`authgate.check_fresh`); returns the identity."""
    if max_age < 0:
        raise ValueError("max_age must be zero or more seconds")

    def dependency(
        request: Request,
        _credentials: HTTPAuthorizationCredentials | None = Security(bearer_scheme),
        _token: str | None = Security(oauth2_scheme),
    ) -> Identity:
        return check_fresh(max_age, request.scope.get("user", ANONYMOUS))

    return dependency
