"""A server-rendered site on Starlette and Jinja2: log in with a form or a passkey, a
protected page of notes with a form protected from cross-site posts, "forgot password",
reset and email verification pages, and the account's security page (an authenticator
app, passkeys) with its "prove it's you again" page.  ``python -m
examples.pages_starlette`` serves it on http://localhost:8001 (``python -m examples``
starts it with the others); in production, ``uvicorn examples.pages_starlette:app``.

authgate serves the forms' targets (``/auth/session``, ``/auth/logout``, ``/auth/mfa``,
``/auth/reauth``, ``/auth/password/...``, ``/auth/email/...``, ``/auth/signup``), the
redirects and the JSON the pages' script calls (``examples/static/account.js``); the
app only renders pages.  ``examples/pages_flask.py`` is the same site on Flask, with the
same templates (``examples/templates/pages/``) and script.

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

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from authgate import AsyncGate, current_identity, require_auth
from authgate.integrations.starlette import AuthGate, csrf_token
from examples.demo import Items

PORT = int(os.environ.get("PORT", "8001"))
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

gate = AsyncGate.from_env()
gate.ensure_superuser_now()
settings = gate.settings
#: The identity providers a person may log in through: the trusted issuers with a login
#: client (``AUTHGATE_TRUSTED_ISSUERS``); none unless configured.
providers = [issuer.name for issuer in settings.trusted_issuers if issuer.login_client_id]
auth = AuthGate(gate)
HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals["csrf_token"] = csrf_token
#: The notes are the demo's items (examples/demo.py), kept beside authgate's store: an
#: item made through the API demo is a note here, and the other way round.
notes = Items.from_env()


def page(request: Request, name: str, **context: Any) -> Response:
    """Render ``pages/<name>.html`` with what every page shows."""
    return templates.TemplateResponse(
        request,
        f"pages/{name}.html",
        {
            "identity": current_identity(),
            "query": dict(request.query_params),
            "signup": settings.signup,
            "min_password": settings.password_min_length,
            "passkeys": settings.passkey_rp_id is not None,
            "providers": providers,
            "framework": "Starlette",
            **context,
        },
    )


async def home(request: Request) -> Response:
    return page(request, "home")


async def login(request: Request) -> Response:
    return page(request, "login")


@require_auth
async def show_notes(request: Request) -> Response:
    return page(request, "notes", notes=notes.readable_by(current_identity()))


@require_auth  # authgate's middleware checked the form's CSRF token before this runs
async def add_note(request: Request) -> Response:
    text = (await request.form()).get("text")
    text = text.strip() if isinstance(text, str) else ""
    if not 1 <= len(text) <= 200:
        return RedirectResponse("/notes?error=note_invalid", 303)
    notes.create(current_identity.username, text)
    return RedirectResponse("/notes", 303)


async def second_factor(request: Request) -> Response:
    return page(request, "second_factor")


@require_auth
async def security(request: Request) -> Response:
    return page(request, "security")


@require_auth
async def reauth(request: Request) -> Response:
    # What this account proves itself with: its password, or its second factor.
    options = await gate.reauth_options(current_identity())
    return page(request, "reauth", methods=options["methods"])


async def forgot_password(request: Request) -> Response:
    return page(request, "forgot")


async def reset_password(request: Request) -> Response:
    return page(request, "reset")


async def verify_email(request: Request) -> Response:
    return page(request, "verify")


async def signup(request: Request) -> Response:
    if not settings.signup:
        raise HTTPException(404)
    return page(request, "signup")


app = Starlette(
    routes=[
        Route("/", home),
        Route("/login", login),
        Route("/notes", show_notes, methods=["GET"]),
        Route("/notes", add_note, methods=["POST"]),
        Route("/login/second-factor", second_factor),
        Route("/account/security", security),
        Route("/reauth", reauth),
        Route("/forgot-password", forgot_password),
        Route("/reset-password", reset_password),
        Route("/verify-email", verify_email),
        Route("/signup", signup),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        *auth.routes,
    ],
    middleware=auth.middleware,
    exception_handlers=auth.exception_handlers,
)

if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=PORT)
