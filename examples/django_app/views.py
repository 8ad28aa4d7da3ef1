"""The demo routes as Django views: functions with authgate's decorators, and
class-based views with its mixins."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views import View
from django.views.decorators.http import require_GET

from authgate import current_identity, require_auth, require_permission, require_role
from authgate.decorators import check_object_permission
from authgate.integrations.django import AuthRequiredMixin, IdentifiedRequest, RoleRequiredMixin
from examples.demo import (
    ITEM_ACCESS,
    MISSING,
    Items,
    item_id,
    item_view,
    items_view,
    parse_title,
)

items = Items.from_env()


@require_GET
def public(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"message": "hello, anyone"})


@require_GET
@require_auth
def protected(request: IdentifiedRequest) -> JsonResponse:
    return JsonResponse({"message": f"hello, {request.identity.username}"})


class OperatorView(RoleRequiredMixin, View):
    role_required = "operator"

    def get(self, request: HttpRequest) -> JsonResponse:
        return JsonResponse({"message": "operators and admins only"})


@require_GET
@require_role("admin")
def admin(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"message": "admins only"})


class ItemsView(AuthRequiredMixin, View):
    def get(self, request: HttpRequest) -> JsonResponse:
        return JsonResponse(items_view(items.readable_by(current_identity)))

    @require_permission("items:create")
    def post(self, request: HttpRequest) -> JsonResponse:
        item = items.create(current_identity.username, parse_title(request.body))
        return JsonResponse(item_view(item), status=201)


@require_GET
@require_auth
def show_item(request: HttpRequest, id: str) -> JsonResponse:
    item = items.get(item_id(id))
    check_object_permission(item, "read", ITEM_ACCESS, missing=MISSING)
    return JsonResponse(item_view(item))
