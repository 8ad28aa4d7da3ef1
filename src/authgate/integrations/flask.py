"""Flask: ``AuthGate(app)`` and the HTTP API as a blueprint.

::

    from flask import Flask
    from authgate.integrations.flask import AuthGate, current_identity
    from authgate import require_role

    app = Flask(__name__)
    auth = AuthGate(app)          # settings from app.config["AUTHGATE_*"] or the environment

    @app.get("/admin")
    @require_role("admin")
    def admin():
        return {"hello": current_identity.username}
"""

from __future__ import annotations

from typing import Any

import click
from flask import Blueprint, Flask, Response, current_app, request
from flask.cli import with_appcontext

from ..api import ApiRequest, HttpApi
from ..cli import CliState, bound_group
from ..config import Settings
from ..context import csrf_token
from ..context import current_identity as _current_identity
from ..errors import AuthGateError
from ..gate import Gate
from ..http import CredentialRules, not_found, request_address
from ..identity import ANONYMOUS, Client, Identity
from ..middleware.wsgi import (
    ENVIRON_KEY,
    AuthGateWSGIMiddleware,
    environ_headers,
    environ_refusal,
)
from ..permissions import RolePolicy

__all__ = ["AuthGate", "csrf_token", "current_identity"]

_API_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]

#: The identity of the current request (anonymous outside one): the same proxy as
#: `authgate.current_identity`, in every framework.
current_identity: Identity = _current_identity


class AuthGate:
    """The Flask extension: middleware, error handlers, the API blueprint and the
    ``flask authgate`` commands.  State lives in ``app.extensions["authgate"]``."""

    def __init__(
        self,
        app: Flask | None = None,
        *,
        gate: Gate | None = None,
        policy: RolePolicy | None = None,
        rules: CredentialRules | None = None,
        url_prefix: str = "",
    ) -> None:
        self._gate = gate
        self.policy = policy
        self.rules = rules
        self.url_prefix = url_prefix
        if app is not None:
            self.init_app(app)

    @property
    def gate(self) -> Gate:
        """The `Gate` of the current app."""
        state: AuthGate = current_app.extensions["authgate"]
        assert state._gate is not None
        return state._gate

    def init_app(self, app: Flask) -> None:
        """Configure `app`: ``AUTHGATE_*`` keys of ``app.config`` override the environment."""
        if self._gate is None:
            self._gate = Gate(Settings.from_config(app.config), policy=self.policy)
        gate = self._gate
        app.extensions["authgate"] = self
        wrapped: Any = app  # Flask's documented idiom replaces the wsgi_app method
        middleware = AuthGateWSGIMiddleware(app.wsgi_app, gate, rules=self.rules)
        wrapped.wsgi_app = middleware
        browser = middleware.rules.browser

        def render_error(err: AuthGateError) -> Response:
            rendered = environ_refusal(request.environ, err, "authgate", browser)
            return Response(rendered.body, rendered.status, headers=rendered.headers)

        app.register_error_handler(AuthGateError, render_error)
        if browser is not None:
            app.jinja_env.globals.setdefault("csrf_token", csrf_token)
        app.register_blueprint(_api_blueprint(gate), url_prefix=self.url_prefix or None)
        app.cli.add_command(_cli_group(), "authgate")


def _api_blueprint(gate: Gate) -> Blueprint:
    blueprint = Blueprint("authgate", __name__)
    api = HttpApi.for_gate(gate)

    def serve(rest: str = "") -> Response:
        path = request.path[len(request.script_root) :] if request.script_root else request.path
        identity = request.environ.get(ENVIRON_KEY, ANONYMOUS)
        api_request = ApiRequest(
            method=request.method,
            path=path,
            identity=identity,
            body=request.get_data(cache=False),
            query=request.args.to_dict(),
            client=Client(request_address(request.remote_addr), request.user_agent.string),
            authorization=request.headers.get("Authorization", ""),
            if_match=request.headers.get("If-Match", ""),
            headers=environ_headers(request.environ),
        )
        response = gate.run(api.answer(api_request)) or not_found()
        answer = Response(response.body, response.status, headers=response.headers)
        if response.status == 204:  # no body, so no Content-Type (Flask adds text/html)
            answer.headers.pop("Content-Type", None)
        return answer

    for rule in (
        f"{api.auth_prefix}/<path:rest>",
        api.users_prefix,
        f"{api.users_prefix}/",
        f"{api.users_prefix}/<path:rest>",
    ):
        blueprint.add_url_rule(
            rule, f"api{rule}", serve, methods=_API_METHODS, strict_slashes=False
        )
    return blueprint


def _cli_group() -> click.Group:
    def state() -> CliState:
        extension: AuthGate = current_app.extensions["authgate"]
        assert extension._gate is not None
        return CliState(gate=extension._gate)

    return bound_group(state, wrap=with_appcontext)
