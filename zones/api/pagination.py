"""Designate's marker pagination: `limit` and `marker` (the id of the last item already seen).

Lists are ordered by (created_at, id); a page answers
`{"<key>": [...], "links": {"self": url, "next": url}, "metadata": {"total_count": n}}`,
with `next` only when there is more.
"""
import uuid

from django.db.models import Q
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

DEFAULT_LIMIT = 20
MAX_LIMIT = 1000


class MarkerPagination(BasePagination):
    key = "results"  # the collection's name in the body: subclasses say "zones", "recordsets", ...

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        self.limit = self._limit(request.query_params.get("limit"))
        self.total_count = queryset.count()
        marker = request.query_params.get("marker")
        if marker:
            seen = view.get_queryset() if view is not None else queryset
            anchor = self._anchor(seen, marker)
            queryset = queryset.filter(
                Q(created_at__gt=anchor.created_at) | Q(created_at=anchor.created_at, id__gt=anchor.id))
        page = list(queryset.order_by("created_at", "id")[: self.limit + 1])
        self.has_next = len(page) > self.limit
        self.page = page[: self.limit]
        return self.page

    @staticmethod
    def _limit(value) -> int:
        if value in (None, ""):
            return DEFAULT_LIMIT
        if value == "max":
            return MAX_LIMIT
        try:
            limit = int(value)
        except ValueError:
            limit = 0
        if limit < 1:
            raise ValidationError({"limit": [f"'{value}' is not a positive integer."]})
        return min(limit, MAX_LIMIT)

    @staticmethod
    def _anchor(queryset, marker):
        try:
            return queryset.get(id=uuid.UUID(str(marker)))
        except (ValueError, queryset.model.DoesNotExist):
            raise ValidationError({"marker": [f"Marker {marker} does not exist."]}) from None

    def get_paginated_response(self, data):
        url = self.request.build_absolute_uri()
        links = {"self": url}
        if self.has_next:
            links["next"] = replace_query_param(
                replace_query_param(url, "marker", str(self.page[-1].id)), "limit", self.limit)
        return Response({self.key: data, "links": links, "metadata": {"total_count": self.total_count}})

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": [self.key, "links", "metadata"],
            "properties": {
                self.key: schema,
                "links": {
                    "type": "object",
                    "properties": {"self": {"type": "string", "format": "uri"},
                                   "next": {"type": "string", "format": "uri"}},
                },
                "metadata": {"type": "object", "properties": {"total_count": {"type": "integer"}}},
            },
        }

    def get_schema_operation_parameters(self, view):
        return [
            {"name": "limit", "required": False, "in": "query",
             "description": f"Page size (default {DEFAULT_LIMIT}, at most {MAX_LIMIT}).", "schema": {"type": "integer"}},
            {"name": "marker", "required": False, "in": "query",
             "description": "The id of the last item of the previous page.", "schema": {"type": "string", "format": "uuid"}},
        ]


def paginated(key: str) -> type[MarkerPagination]:
    return type(f"{key.title()}Pagination", (MarkerPagination,), {"key": key})
