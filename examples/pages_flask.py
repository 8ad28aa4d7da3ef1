"""A server-rendered site on Flask and Jinja2: log in with a form or a passkey, a
protected page of notes with a form protected from cross-site posts, "forgot password",
reset and email verification pages, and the account's security page (an authenticator
app, passkeys) with its "prove it's you again" page.  ``python -m examples.pages_flask``
serves it on http://localhost:8002 (``python -m examples`` starts it with the others); in
production, ``gunicorn examples.pages_flask:app``.

authgate serves the forms' targets (``/auth/session``, ``/auth/logout``, ``/auth/mfa``,
``/auth/reauth``, ``/auth/password/...``, ``/auth/email/...``, ``/auth/signup``), the
redirects and the JSON the pages' script calls (``examples/static/account.js``); the
app only renders pages.  ``examples/pages_starlette.py`` is the same site on Starlette,
with the same templates (``examples/templates/pages/``) and script.

Configured only from ``AUTHGATE_*`` variables; seeds the admin from
``AUTHGATE_SUPERUSER_*``.  What a browser site needs is on unless set otherwise: cookie
sessions, the login page, sign-up, mail printed to the terminal (``console://``) with
links to this site, and passkeys for http://localhost:<PORT> (a passkey belongs to a
domain: they do not work from http://127.0.0.1).  An identity provider configured
with a login client (``AUTHGATE_TRUSTED_ISSUERS``, its ``login_client_id``) gets a
"Sign in with <name>" button on the login page, and a button on the home page that logs
out here and at the provider (authgate serves ``/auth/oidc/<name>/...``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask, abort, redirect, render_template, request

from authgate import current_identity, require_auth
from authgate.integrations.flask import AuthGate
from examples.demo import Items

PORT = int(os.environ.get("PORT", "8002"))
for name, value in {
    "AUTHGATE_COOKIE_SESSIONS": "true",
    "AUTHGATE_LOGIN_URL": "/login",
    "AUTHGATE_MFA_URL": "/login/second-factor",
    "AUTHGATE_SIGNUP": "true",
    "AUTHGATE_MAIL_URL": "console://",
    # localhost, not 127.0.0.1: a passkey belongs to a domain (its relying party),
    # never to an IP address, and browsers treat http://localhost as secure.
    "AUTHGATE_PUBLIC_URL": f"http://localhost:{PORT}",
    "AUTHGATE_PASSKEY_RP_ID": "localhost",
    "AUTHGATE_PASSKEY_ORIGINS": f"http://localhost:{PORT}",
}.items():
    os.environ.setdefault(name, value)

HERE = Path(__file__).parent
app = Flask(__name__, template_folder=str(HERE / "templates"), static_folder=str(HERE / "static"))
auth = AuthGate(app)  # its csrf_token() is a Jinja2 global already
with app.app_context():
    settings = auth.gate.settings
    auth.gate.ensure_superuser()
#: The identity providers a person may log in through: the trusted issuers with a login
#: client (``AUTHGATE_TRUSTED_ISSUERS``); none unless configured.
providers = [issuer.name for issuer in settings.trusted_issuers if issuer.login_client_id]
#: The notes are the demo's items (examples/demo.py), kept beside authgate's store: an
#: item made through the API demo is a note here, and the other way round.
notes = Items.from_env()


def page(name: str, **context: Any) -> str:
    """Render ``pages/<name>.html`` with what every page shows."""
    return render_template(
        f"pages/{name}.html",
        identity=current_identity(),
        query=request.args.to_dict(),
        signup=settings.signup,
        min_password=settings.password_min_length,
        passkeys=settings.passkey_rp_id is not None,
        providers=providers,
        framework="Flask",
        **context,
    )


@app.get("/")
def home() -> str:
    return page("home")


@app.get("/login")
def login() -> str:
    return page("login")


@app.get("/notes")
@require_auth
def show_notes() -> str:
    return page("notes", notes=notes.readable_by(current_identity()))


@app.post("/notes")
@require_auth  # authgate's middleware checked the form's CSRF token before this runs
def add_note() -> Any:
    text = request.form.get("text", "").strip()
    if not 1 <= len(text) <= 200:
        return redirect("/notes?error=note_invalid", 303)
    notes.create(current_identity.username, text)
    return redirect("/notes", 303)


@app.get("/login/second-factor")
def second_factor() -> str:
    return page("second_factor")


@app.get("/account/security")
@require_auth
def security() -> str:
    return page("security")


@app.get("/reauth")
@require_auth
def reauth() -> str:
    # What this account proves itself with: its password, or its second factor.
    return page("reauth", methods=auth.gate.reauth_options(current_identity())["methods"])


@app.get("/forgot-password")
def forgot_password() -> str:
    return page("forgot")


@app.get("/reset-password")
def reset_password() -> str:
    return page("reset")


@app.get("/verify-email")
def verify_email() -> str:
    return page("verify")


@app.get("/signup")
def signup() -> str:
    if not settings.signup:
        abort(404)
    return page("signup")


if __name__ == "__main__":
    from werkzeug.serving import run_simple

    run_simple("127.0.0.1", PORT, app, threaded=True)
