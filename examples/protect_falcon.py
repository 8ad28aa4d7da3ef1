"""The few lines that protect an existing Falcon app, with the plain WSGI middleware
(run: ``gunicorn examples.protect_falcon:app`` with AUTHGATE_SECRET_KEY set)."""

from __future__ import annotations

import falcon

from authgate import AuthGateWSGIMiddleware, Gate, current_identity, require_role


class Reports:
    @require_role("operator")  # on the responder
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"for": current_identity.username}


falcon_app = falcon.App()  # your existing app
falcon_app.add_route("/reports", Reports())
app = AuthGateWSGIMiddleware(falcon_app, Gate.from_env(), api=True)  # + /auth, JSON errors
