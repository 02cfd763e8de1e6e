"""The Designate v2 URL space. Designate's URLs have no trailing slash; the same URL with one
is served too (designateclient calls `/v2/zones`, browsers and DRF habits add the slash)."""
from django.http import Http404
from django.urls import Resolver404, path, re_path, resolve
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from . import reserved, views
from .changes import ChangeViewSet, ZoneChangeViewSet
from .events import EventListView
from .quotas import LimitsView, OwnQuotaView, QuotaView
from .tokens import TokenViewSet
from .zone_tasks import ZoneExportFileView, ZoneExportViewSet, ZoneImportViewSet

app_name = "api"

zones = views.ZoneViewSet
recordsets = views.RecordSetViewSet
pools = views.PoolViewSet
tlds = reserved.TldViewSet
blacklists = reserved.BlacklistViewSet
zone_imports, zone_exports = ZoneImportViewSet, ZoneExportViewSet


@csrf_exempt  # like every DRF view; DRF itself enforces CSRF for session-authenticated calls
def without_trailing_slash(request, path):
    """Serve `/v2/<path>/` as `/v2/<path>`."""
    try:
        match = resolve(request.path_info[:-1])
    except Resolver404:
        raise Http404(request.path) from None
    return match.func(request, *match.args, **match.kwargs)


urlpatterns = [
    # Zones and recordsets first: a request's URL is matched against the patterns in order, and these
    # take nearly every call (the tasks' URLs below cannot match them: a str segment holds no "/").
    path("v2/zones", zones.as_view({"get": "list", "post": "create"}), name="zone-list"),
    path("v2/zones/<str:zone_id>", zones.as_view({"get": "retrieve", "patch": "partial_update",
                                                  "delete": "destroy"}), name="zone-detail"),
    path("v2/zones/<str:zone_id>/recordsets", recordsets.as_view({"get": "list", "post": "create"}),
         name="recordset-list"),
    path("v2/zones/<str:zone_id>/recordsets/<str:recordset_id>",
         recordsets.as_view({"get": "retrieve", "put": "update", "delete": "destroy"}), name="recordset-detail"),
    path("", views.RootView.as_view(), name="root"),
    re_path(r"^v2/?$", views.VersionView.as_view(), name="v2"),
    path("v2/schema", SpectacularAPIView.as_view(), name="schema"),
    path("v2/docs", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("v2/zones/tasks/imports", zone_imports.as_view({"get": "list", "post": "create"}), name="zone-import-list"),
    path("v2/zones/tasks/imports/<str:import_id>", zone_imports.as_view({"get": "retrieve", "delete": "destroy"}),
         name="zone-import-detail"),
    path("v2/zones/tasks/exports", zone_exports.as_view({"get": "list"}), name="zone-export-list"),
    path("v2/zones/tasks/exports/<str:export_id>", zone_exports.as_view({"get": "retrieve", "delete": "destroy"}),
         name="zone-export-detail"),
    path("v2/zones/tasks/exports/<str:export_id>/export", ZoneExportFileView.as_view(), name="zone-export-file"),
    path("v2/zones/<str:zone_id>/tasks/export", zone_exports.as_view({"post": "create"}), name="zone-export-create"),
    path("v2/zones/<str:zone_id>/nameservers", views.NameserversView.as_view(), name="zone-nameservers"),
    path("v2/zones/<str:zone_id>/propagation", views.PropagationView.as_view(), name="zone-propagation"),
    path("v2/zones/<str:zone_id>/changes", ZoneChangeViewSet.as_view({"get": "list"}), name="zone-change-list"),
    path("v2/recordsets", views.AllRecordSetsViewSet.as_view({"get": "list"}), name="all-recordset-list"),
    path("v2/pools", pools.as_view({"get": "list", "post": "create"}), name="pool-list"),
    path("v2/pools/<str:pool_id>", pools.as_view({"get": "retrieve", "patch": "partial_update",
                                                  "delete": "destroy"}), name="pool-detail"),
    path("v2/pools/<str:pool_id>/targets/<str:target_id>/sync", views.TargetSyncView.as_view(),
         name="target-sync"),
    path("v2/events", EventListView.as_view(), name="event-list"),
    path("v2/changes", ChangeViewSet.as_view({"get": "list"}), name="change-list"),
    path("v2/quotas", OwnQuotaView.as_view(), name="quota-own"),
    path("v2/quotas/<str:project_id>", QuotaView.as_view(), name="quota-detail"),
    path("v2/limits", LimitsView.as_view(), name="limits"),
    path("v2/tokens", TokenViewSet.as_view({"get": "list", "post": "create"}), name="token-list"),
    path("v2/tokens/<str:token_id>", TokenViewSet.as_view({"get": "retrieve", "delete": "destroy"}),
         name="token-detail"),
    path("v2/tlds", tlds.as_view({"get": "list", "post": "create"}), name="tld-list"),
    path("v2/tlds/<str:tld_id>", tlds.as_view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"}),
         name="tld-detail"),
    path("v2/blacklists", blacklists.as_view({"get": "list", "post": "create"}), name="blacklist-list"),
    path("v2/blacklists/<str:blacklist_id>", blacklists.as_view({"get": "retrieve", "patch": "partial_update",
                                                                 "delete": "destroy"}), name="blacklist-detail"),
    re_path(r"^v2/(?P<path>.+[^/])/$", without_trailing_slash),
]
