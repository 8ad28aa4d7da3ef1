"""The Django app: ``INSTALLED_APPS = [..., "authgate.integrations.django"]`` gives
``manage.py authgate``."""

from __future__ import annotations

from django.apps import AppConfig


class AuthGateConfig(AppConfig):
    """authgate in a Django project (no models: users live in authgate's store)."""

    name = "authgate.integrations.django"
    label = "authgate"
    verbose_name = "authgate"
