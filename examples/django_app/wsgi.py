"""The WSGI app: ``gunicorn examples.django_app.wsgi:app``.  Seeds the admin at start,
from ``AUTHGATE_SUPERUSER_*``."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

from authgate.integrations.django import get_gate

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_app.settings")

app = application = get_wsgi_application()
get_gate().ensure_superuser()
