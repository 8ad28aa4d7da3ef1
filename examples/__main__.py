"""``python -m examples``: start the FastAPI API demo on http://127.0.0.1:8000 and the
server-rendered sites, Starlette on http://localhost:8001 and Flask on
http://localhost:8002 (each in a process of its own; localhost, because passkeys belong
to a domain, never to an IP address), and show how to try them; Ctrl-C stops all three.
Set AUTHGATE_SECRET_KEY, AUTHGATE_SUPERUSER_USERNAME and AUTHGATE_SUPERUSER_PASSWORD
first (the README's first command does).  ``PORT`` moves the API demo, and the sites
with it (PORT+1, PORT+2)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import uvicorn

from authgate import ensure_superuser

HOST, PORT = "127.0.0.1", int(os.environ.get("PORT", "8000"))
#: The page sites: (framework, module run with ``python -m``, port).
SITES = [
    ("Starlette", "examples.pages_starlette", PORT + 1),
    ("Flask", "examples.pages_flask", PORT + 2),
]


def start_site(module: str, port: int) -> subprocess.Popen[bytes]:
    """Serve a page site in a child process, sharing the terminal (its mailed links
    are printed there): the same store and admin as the API demo, and the site's own
    address for the links, whatever AUTHGATE_PUBLIC_URL says (two sites, two addresses)."""
    env = {**os.environ, "PORT": str(port), "AUTHGATE_PUBLIC_URL": f"http://localhost:{port}"}
    return subprocess.Popen([sys.executable, "-m", module], env=env)  # noqa: S603 - fixed arguments


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a site (Ctrl-C in the terminal reached it already; SIGTERM otherwise)."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main() -> None:
    missing = [
        v
        for v in (
            "AUTHGATE_SECRET_KEY",
            "AUTHGATE_SUPERUSER_USERNAME",
            "AUTHGATE_SUPERUSER_PASSWORD",
        )
        if not os.environ.get(v)
    ]
    if missing:
        sys.exit(f"set {', '.join(missing)} first (see the README's first command)")
    # Seed the admin once, before three processes look for it: on a fresh store, each
    # seeding at once would race (as `authgate bootstrap` goes before a server's workers).
    ensure_superuser()
    user = os.environ["AUTHGATE_SUPERUSER_USERNAME"]
    url = f"http://{HOST}:{PORT}"
    # uvicorn ends a SIGTERM by raising it again once it has shut down: with Python's
    # default handler the process would die there, before stopping the sites.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    sites = [
        (name, f"http://localhost:{port}", start_site(module, port)) for name, module, port in SITES
    ]
    try:
        print(
            f"""authgate demo (FastAPI) on {url}   store: {os.environ.get("AUTHGATE_STORE", "sqlite:///authgate.db")}

Try it:
  curl -s {url}/public
  TOKEN=$(curl -s -X POST {url}/auth/login -H 'content-type: application/json' \\
      -d '{{"username": "{user}", "password": "'"$AUTHGATE_SUPERUSER_PASSWORD"'"}}' \\
      | python -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
  curl -s {url}/auth/me -H "Authorization: Bearer $TOKEN"
  curl -s {url}/admin -H "Authorization: Bearer $TOKEN"
  curl -s -X POST {url}/items -H "Authorization: Bearer $TOKEN" -d '{{"title": "first"}}'
  open {url}/docs   (the Authorize button takes the token)

Browser logins, the same site on two frameworks (log in as {user}, or sign up; the
links of reset and confirmation mails are printed here):
"""
            + "".join(f"  open {site}/notes   ({name})\n" for name, site, _ in sites),
            flush=True,
        )
        uvicorn.run("examples.fastapi_app:app", host=HOST, port=PORT, log_level="info")
    finally:
        for _, _, process in sites:
            stop(process)


if __name__ == "__main__":
    main()
