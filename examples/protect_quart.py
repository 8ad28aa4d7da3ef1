"""The few lines that protect an existing Quart app, with the plain ASGI middleware
(run: ``uvicorn examples.protect_quart:app`` with AUTHGATE_SECRET_KEY set)."""

from __future__ import annotations

from quart import Quart

from authgate import AsyncGate, AuthGateMiddleware, current_identity, require_role

quart_app = Quart(__name__)  # your existing app


@quart_app.get("/reports")
@require_role("operator")  # below the route decorator
async def reports() -> dict[str, str]:
    return {"for": current_identity.username}


app = AuthGateMiddleware(quart_app, AsyncGate.from_env(), api=True)  # + /auth, JSON errors
