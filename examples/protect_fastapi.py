"""The few lines that protect an existing FastAPI app (run: ``uvicorn
examples.protect_fastapi:app`` with AUTHGATE_SECRET_KEY set)."""

from __future__ import annotations

from fastapi import Depends, FastAPI

from authgate import AsyncGate, Identity
from authgate.integrations.fastapi import AuthGate, require_role

app = FastAPI()  # your existing app
AuthGate(AsyncGate.from_env()).install(app)  # middleware, /auth and /api/users, JSON errors


@app.get("/reports")
async def reports(me: Identity = Depends(require_role("operator"))) -> dict[str, str]:
    return {"for": me.username}
