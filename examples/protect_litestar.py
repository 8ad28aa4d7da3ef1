"""The few lines that protect an existing Litestar app, with the plain ASGI middleware
(run: ``uvicorn examples.protect_litestar:app`` with AUTHGATE_SECRET_KEY set)."""

from __future__ import annotations

from litestar import Litestar, get

from authgate import AsyncGate, AuthGateMiddleware, current_identity, require_role


@get("/reports")
@require_role("operator")  # below the route decorator
async def reports() -> dict[str, str]:
    return {"for": current_identity.username}


app = AuthGateMiddleware(
    Litestar([reports]), AsyncGate.from_env(), api=True
)  # + /auth, JSON errors
