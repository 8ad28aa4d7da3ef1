"""The few lines that protect an existing Starlette app (run: ``uvicorn
examples.protect_starlette:app`` with AUTHGATE_SECRET_KEY set)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from authgate import AsyncGate, current_identity, require_role
from authgate.integrations.starlette import AuthGate


@require_role("operator")
async def reports(request: Request) -> JSONResponse:
    return JSONResponse({"for": current_identity.username})


app = Starlette(routes=[Route("/reports", reports)])  # your existing app
AuthGate(AsyncGate.from_env()).install(app)  # middleware, /auth and /api/users, JSON errors
