"""The Django app: ``INSTALLED_APPS = [..., "authgate.integrations.django"]`` gives
``manage.py authgate`` and a system check that the middleware is installed."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core import checks

MIDDLEWARE = "authgate.integrations.django.AuthGateMiddleware"


class AuthGateConfig(AppConfig):
    """authgate in a Django project (no models: users live in authgate's store)."""

    name = "authgate.integrations.django"
    label = "authgate"
    verbose_name = "authgate"

    def ready(self) -> None:
        checks.register(check_middleware)


def check_middleware(**kwargs: Any) -> list[checks.CheckMessage]:
    """``manage.py check``: without the middleware, no request has an identity and
    every guarded view answers 401."""
    if MIDDLEWARE in (getattr(settings, "MIDDLEWARE", None) or ()):
        return []
    return [
        checks.Error(
            f"{MIDDLEWARE} is not in MIDDLEWARE",
            hint="add it after Django's own middleware, so every request gets its identity",
            id="authgate.E001",
        )
    ]
