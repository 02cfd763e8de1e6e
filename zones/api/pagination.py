"""Designate's marker pagination and sorting: `limit`, `marker` (the id of the last item already
seen), `sort_key` and `sort_dir`.

A list is ordered by (sort key, id), both ascending or both descending (default: created_at,
ascending), NULL after every value and text by code point whatever the database's locale; the page
after a marker starts right after it in that order. A page answers
`{"<key>": [...], "links": {"self": url, "next": url}, "metadata": {"total_count": n}}`,
with `next` (the same query, the marker moved) only when there is more.

A view sorts by its `sort_keys`: a list of Designate's key names (each the model field of that
name, but `tenant_id` is `project_id`) or a dict {key name: ORM path}. As in Designate,
`tenant_id` is honoured only for a caller looking across projects (otherwise the default order).
"""
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connections
from django.db.models import CharField, F, Q, TextField
from django.db.models.constants import LOOKUP_SEP
from django.db.models.functions import Collate
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from .auth import project_scope

DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
DEFAULT_SORT_KEY = "created_at"
SORT_DIRS = ("asc", "desc")
SORT_VALUE = "sort_value"  # the alias the sort key's value goes by in the page's query
# Collations that compare text by code point, as clients (and Python) do: a stock PostgreSQL image
# is initialised with en_US, which would put `z10.` before `z1.`.
CODE_POINT_COLLATION = {"postgresql": "C", "sqlite": "BINARY"}


def sort_fields(view) -> dict[str, str]:
    """The view's sort keys, each with its ORM path."""
    keys = getattr(view, "sort_keys", None) or ()
    if isinstance(keys, dict):
        return dict(keys)
    return {key: "project_id" if key == "tenant_id" else key for key in keys}


class MarkerPagination(BasePagination):
    key = "results"  # the collection's name in the body: subclasses say "zones", "recordsets", ...

    def paging_params(self, view) -> list[str]:
        """The query parameters the paginator reads (a list's others are its FilterSet's)."""
        return ["limit", "marker"] + (["sort_key", "sort_dir"] if sort_fields(view) else [])

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        params = request.query_params
        self.limit = self._limit(params.get("limit"))
        descending = self._descending(params.get("sort_dir"))
        value = self._sort_value(queryset, self._sort_path(view, request, params.get("sort_key")))
        self.total_count = queryset.count()
        queryset = queryset.alias(**{SORT_VALUE: value})
        marker = params.get("marker")
        if marker:
            seen = view.get_queryset() if view is not None else queryset
            queryset = queryset.filter(after(*self._anchor(seen.annotate(**{SORT_VALUE: value}), marker), descending))
        if descending:
            order = [F(SORT_VALUE).desc(nulls_first=True), F("pk").desc()]
        else:
            order = [F(SORT_VALUE).asc(nulls_last=True), F("pk").asc()]
        page = list(queryset.order_by(*order)[: self.limit + 1])
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
    def _descending(value) -> bool:
        if value in (None, ""):
            return False
        if value not in SORT_DIRS:
            raise ValidationError({"sort_dir": ["sort_dir must be asc or desc."]})
        return value == "desc"

    @staticmethod
    def _sort_path(view, request, key) -> str:
        fields = sort_fields(view)
        if key not in (None, "") and key not in fields:
            raise ValidationError({"sort_key": [f"sort_key must be one of {', '.join(fields)}."]})
        if key in (None, "") or (key == "tenant_id" and project_scope(request) is not None):
            key = DEFAULT_SORT_KEY
        return fields.get(key, key)

    @staticmethod
    def _sort_value(queryset, path):
        """The sort key's column; text compared by code point."""
        model, (*relations, name) = queryset.model, path.split(LOOKUP_SEP)
        for relation in relations:
            model = model._meta.get_field(relation).related_model
        collation = CODE_POINT_COLLATION.get(connections[queryset.db].vendor)
        if collation and isinstance(model._meta.get_field(name), (CharField, TextField)):
            return Collate(F(path), collation)
        return F(path)

    @staticmethod
    def _anchor(seen, marker):
        """The marker's (sort value, id), if the caller can see it; the error never repeats the id."""
        try:
            row = seen.filter(pk=marker).values_list(SORT_VALUE, "pk").first()
        except (ValueError, TypeError, DjangoValidationError):  # not an id at all
            row = None
        if row is None:
            raise ValidationError({"marker": ["The marker is not the id of an item of this list."]})
        return row

    def get_paginated_response(self, data):
        url = self.request.build_absolute_uri()
        links = {"self": url}
        if self.has_next:
            links["next"] = replace_query_param(
                replace_query_param(url, "marker", str(self.page[-1].pk)), "limit", self.limit)
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
        parameters = [
            {"name": "limit", "required": False, "in": "query",
             "description": f"Page size (default {DEFAULT_LIMIT}; more than {MAX_LIMIT}, or `max`, is {MAX_LIMIT}).",
             "schema": {"oneOf": [{"type": "integer", "minimum": 1}, {"type": "string", "enum": ["max"]}]}},
            {"name": "marker", "required": False, "in": "query",
             "description": "The id of the last item of the previous page.",
             "schema": {"type": "string", "format": "uuid"}},
        ]
        keys = list(sort_fields(view))
        if keys:
            parameters += [
                {"name": "sort_key", "required": False, "in": "query", "schema": {"type": "string", "enum": keys},
                 "description": f"Order by this key, then id (default {DEFAULT_SORT_KEY}; tenant_id only across "
                                "projects)."},
                {"name": "sort_dir", "required": False, "in": "query",
                 "schema": {"type": "string", "enum": list(SORT_DIRS)}, "description": "Default asc."},
            ]
        return parameters


def after(value, pk, descending: bool) -> Q:
    """The rows after (value, pk) in (sort value, pk) order, NULL counting as the largest value."""
    null, not_null = Q(**{f"{SORT_VALUE}__isnull": True}), Q(**{f"{SORT_VALUE}__isnull": False})
    if descending:
        if value is None:
            return (null & Q(pk__lt=pk)) | not_null
        return (Q(**{SORT_VALUE: value}) & Q(pk__lt=pk)) | Q(**{f"{SORT_VALUE}__lt": value})
    if value is None:
        return null & Q(pk__gt=pk)
    return (Q(**{SORT_VALUE: value}) & Q(pk__gt=pk)) | Q(**{f"{SORT_VALUE}__gt": value}) | null


def paginated(key: str) -> type[MarkerPagination]:
    return type(f"{key.title()}Pagination", (MarkerPagination,), {"key": key})
