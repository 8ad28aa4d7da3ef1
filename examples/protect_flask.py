"""The few lines that protect an existing Flask app (run: ``flask --app
examples.protect_flask run`` with AUTHGATE_SECRET_KEY set)."""

from __future__ import annotations

from flask import Flask

from authgate import require_role
from authgate.integrations.flask import AuthGate, current_identity

app = Flask(__name__)  # your existing app
AuthGate(app)  # middleware, /auth and /api/users, JSON errors, `flask authgate` commands


@app.get("/reports")
@require_role("operator")  # below the route decorator
def reports() -> dict[str, str]:
    return {"for": current_identity.username}
