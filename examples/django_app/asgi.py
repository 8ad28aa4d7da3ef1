"""The ASGI app: ``uvicorn examples.django_app.asgi:app``.  The middleware and views are
sync; Django runs them in a thread, with the request's identity."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

from authgate.integrations.django import get_gate

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_app.settings")

app = application = get_asgi_application()
get_gate().ensure_superuser()
