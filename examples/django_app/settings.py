"""Django settings of the demo project.  authgate itself is configured by the
``AUTHGATE_*`` environment variables, like every example app; any ``AUTHGATE_*`` name
set here would take precedence."""

from __future__ import annotations

import os
import secrets

# Django's own signing key (its sessions and CSRF cookies; this project uses neither).
# authgate signs its tokens with AUTHGATE_SECRET_KEY, never with this one.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(50)
DEBUG = False
ALLOWED_HOSTS = os.environ.get(
    "DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver"
).split(",")
INSTALLED_APPS = ["authgate.integrations.django"]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "authgate.integrations.django.AuthGateMiddleware",
]
ROOT_URLCONF = "examples.django_app.urls"
WSGI_APPLICATION = "examples.django_app.wsgi.app"
USE_TZ = True
TIME_ZONE = "UTC"  # Django sets the process's TZ from this

AUTHGATE_POLICY = "examples.demo.POLICY"
