"""The API, the admin, and JSON errors in Designate's shape for everything no view answers."""
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from django.views.generic import RedirectView

from dnsctl.health import health_view
from dnsctl.metrics import metrics_view
from dnsctl.middleware import error
from zones.admin import overview_view


@csrf_exempt
def unknown_path(request, path=""):
    """Any method on a path no route serves: a JSON 404. As a route (not only handler404) it also
    answers under DEBUG, where Django would show its HTML 404 page, and it keeps CommonMiddleware's
    APPEND_SLASH from redirecting, which under DEBUG is a RuntimeError (a 500) for a POST."""
    return error(404, "not_found", "The resource could not be found.")


def bad_request(request, exception):
    return error(400, "bad_request", "The request could not be understood.")


def permission_denied(request, exception):
    return error(403, "forbidden", "You are not allowed to do this.")


def page_not_found(request, exception):
    return unknown_path(request)


def server_error(request):
    return error(500, "internal_server_error", "An internal error occurred.")


handler400 = bad_request
handler403 = permission_denied
handler404 = page_not_found
handler500 = server_error

urlpatterns = [
    path("health", health_view, name="health"),
    path("metrics", csrf_exempt(metrics_view), name="metrics"),
    path("admin/overview/", admin.site.admin_view(overview_view), name="admin-overview"),
    path("admin/", admin.site.urls),
    path("admin", csrf_exempt(RedirectView.as_view(url="/admin/", permanent=True))),  # what APPEND_SLASH did
    path("", include("zones.api.urls")),
    re_path(r"^(?P<path>.*)$", unknown_path),
]
