"""The URLconf and a stand-in authentication middleware of the Django app in test_wsgi.py."""

from __future__ import annotations

from types import SimpleNamespace

from django.http import HttpResponse, HttpResponseRedirect
from django.urls import include, path


class FakeUser(SimpleNamespace):
    is_authenticated = True

    def get_username(self) -> str:
        return self.username


class FakeAuthMiddleware:
    """``request.user`` from an X-User header (Django's own needs a database)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        name = request.headers.get("X-User")
        request.user = FakeUser(pk=name, username=name) if name else None
        request.session = SimpleNamespace(session_key=f"key-{name}" if name else None)
        return self.get_response(request)


def item(request, item_id):
    return HttpResponse(f"item {item_id}")


def status(request, code):
    return HttpResponse("x", status=code)


def boom(request):
    raise RuntimeError("kaboom")


def login(request):
    request.user = FakeUser(pk=request.POST["user"], username=request.POST["user"])
    return HttpResponseRedirect("/")


urlpatterns = [
    path("items/<int:item_id>/", item),
    path("status/<int:code>/", status),
    path("boom/", boom),
    path("accounts/", include([path("login/", login)])),
]
