"""``python -m examples``: start the FastAPI demo on http://127.0.0.1:8000 and show how
to try it.  Set AUTHGATE_SECRET_KEY, AUTHGATE_SUPERUSER_USERNAME and
AUTHGATE_SUPERUSER_PASSWORD first (the README's first command does)."""

from __future__ import annotations

import os
import sys

import uvicorn

HOST, PORT = "127.0.0.1", int(os.environ.get("PORT", "8000"))


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
    user = os.environ["AUTHGATE_SUPERUSER_USERNAME"]
    url = f"http://{HOST}:{PORT}"
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
""",
        flush=True,
    )
    uvicorn.run("examples.fastapi_app:app", host=HOST, port=PORT, log_level="info")


if __name__ == "__main__":
    main()
