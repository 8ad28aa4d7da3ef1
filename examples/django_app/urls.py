"""The demo routes, and authgate's HTTP API."""

from __future__ import annotations

from django.urls import include, path

from examples.django_app import views

urlpatterns = [
    path("", include("authgate.integrations.django.urls")),
    path("public", views.public),
    path("protected", views.protected),
    path("operator", views.OperatorView.as_view()),
    path("admin", views.admin),
    path("items", views.ItemsView.as_view()),
    path("items/<str:id>", views.show_item),
]
