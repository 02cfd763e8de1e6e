"""GET /v2/events (admins only): the published create/update/delete events, in publish order.

`after` is the cursor of the last event already seen (each event's `cursor`, also carried by the
event on the bus); cursors are contiguous, so a consumer that sees a jump on the bus can fetch the
gap here. `type` (repeatable or comma-separated) narrows to some event types. Any other query
parameter, or `after` / `limit` given twice, is a 400 naming it.
"""
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from zones import events

from .auth import API_PERMISSIONS, IsAdmin
from .filters import QueryParamsMixin
from .pagination import MarkerPagination

OUTBOX_TYPES = (events.CREATE, events.UPDATE, events.DELETE)


def _cursor(value) -> int:
    if value in (None, ""):
        return 0
    if not value.isdigit():
        raise ValidationError({"after": [f"'{value}' is not an event cursor (a non-negative integer)."]})
    return int(value)


def _types(request) -> list[str]:
    types = [t for value in request.query_params.getlist("type") for t in value.split(",") if t]
    unknown = [t for t in types if t not in OUTBOX_TYPES]
    if unknown:
        raise ValidationError({"type": [f"Unknown event type {', '.join(unknown)}; the outbox holds "
                                        f"{', '.join(OUTBOX_TYPES)} (exists events are only on the bus)."]})
    return types


class EventListView(QueryParamsMixin, APIView):
    permission_classes = API_PERMISSIONS + [IsAdmin]
    query_params = ("after", "type", "limit")
    repeatable_params = ("type",)

    @extend_schema(responses=OpenApiTypes.OBJECT, parameters=[
        OpenApiParameter("after", int, description="Cursor of the last event already seen (default 0)."),
        OpenApiParameter("type", str, many=True, enum=OUTBOX_TYPES),
        OpenApiParameter("limit", int, description="Page size (default 20, at most 1000)."),
    ])
    def get(self, request):
        after, types = _cursor(request.query_params.get("after")), _types(request)
        limit = MarkerPagination._limit(request.query_params.get("limit"))
        page = list(events.published_events(after, types)[: limit + 1])
        body = [events.outbox_envelope(row) for row in page[:limit]]
        url = request.build_absolute_uri()
        links = {"self": url}
        if len(page) > limit:
            links["next"] = replace_query_param(replace_query_param(url, "after", body[-1]["cursor"]), "limit", limit)
        return Response({"events": body, "links": links})
