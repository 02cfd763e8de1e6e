"""Query strings as Designate reads them: every endpoint takes only the parameters it knows,
each once; list filters are exact and case-insensitive, with `*` as a wildcard."""
import re

import django_filters as filters
from django.db.models import TextField
from django.db.models.functions import Cast
from rest_framework.exceptions import ValidationError

from zones.models import Pool, RecordSet, Zone


class QueryParamsMixin:
    """Designate's `_apply_filter_params` rule on every view: a query parameter the view does not
    read, or one given twice, is a 400 naming it, before the view does anything (after the caller
    is authenticated and allowed in, so a stranger learns nothing).

    A list (a viewset's `list` action; for a plain view, a GET with a `pagination_class`) reads its
    `filterset_class`'s filters and its paginator's `paging_params`; any view adds its own
    `query_params` and names the ones it takes many times in `repeatable_params`. A view that
    declares nothing takes nothing.
    """

    query_params: tuple[str, ...] = ()
    repeatable_params: tuple[str, ...] = ()

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        check_query_params(request.query_params, self.accepted_query_params(), self.repeatable_params)

    def accepted_query_params(self) -> set[str]:
        accepted = set(self.query_params)
        if self.is_list():
            filterset = getattr(self, "filterset_class", None)
            if filterset is not None:
                accepted.update(filterset.base_filters)
            paginator = getattr(self, "paginator", None)  # GenericAPIView's, from pagination_class
            if paginator is not None:
                accepted.update(paginator.paging_params(self))
        return accepted

    def is_list(self) -> bool:
        action = getattr(self, "action", None)
        if action is not None:
            return action == "list"
        return self.request.method in ("GET", "HEAD") and getattr(self, "pagination_class", None) is not None


def check_query_params(params, accepted, repeatable=()):
    errors = {}
    for name in params:
        if name not in accepted:
            takes = f"it takes {', '.join(sorted(accepted))}" if accepted else "it takes none"
            errors[name] = [f"Unknown query parameter for this endpoint: {takes}."]
        elif len(params.getlist(name)) > 1 and name not in repeatable:
            errors[name] = ["Given more than once: give it once."]
    if errors:
        raise ValidationError(errors)


MAX_PATTERN = 255  # a wildcard filter's length: the longest name it could match


def wildcard_parts(value: str, field: str) -> list[str]:
    """The literal pieces between a pattern's `*`s. A run of `*` is one `*` (the same matches), and
    a pattern is at most MAX_PATTERN characters: a thousand `*` would cost the database seconds."""
    if len(value) > MAX_PATTERN:
        raise ValidationError({field: [f"A pattern with `*` is at most {MAX_PATTERN} characters."]})
    return [re.escape(part) for part in re.sub(r"\*+", "*", value).split("*")]


def wildcard_regex(value: str, field: str) -> str:
    return "^" + ".*".join(wildcard_parts(value, field)) + "$"


def match(queryset, field: str, value: str):
    if "*" in value:
        return queryset.filter(**{f"{field}__iregex": wildcard_regex(value, field)})
    return queryset.filter(**{f"{field}__iexact": value})


class WildcardFilter(filters.CharFilter):
    """Exact, case-insensitive; `*` matches any run of characters."""

    def filter(self, qs, value):
        if value in ("", None):
            return qs
        return match(qs, self.field_name, value)


class ZoneFilter(filters.FilterSet):
    name = WildcardFilter(help_text="Zone name, e.g. example.com. (`*` is a wildcard).")
    email = WildcardFilter()
    description = WildcardFilter()
    status = filters.CharFilter(lookup_expr="iexact")
    type = filters.CharFilter(method="filter_type", help_text="PRIMARY (every zone here is a primary).")
    ttl = filters.NumberFilter()

    class Meta:
        model = Zone
        fields = ["name", "email", "description", "status", "type", "ttl"]

    def filter_type(self, queryset, name, value):
        return queryset if value.upper() == "PRIMARY" else queryset.none()


class RecordSetFilter(filters.FilterSet):
    name = WildcardFilter(help_text="Recordset name, e.g. www.example.com. (`*` is a wildcard).")
    type = filters.CharFilter(lookup_expr="iexact")
    status = filters.CharFilter(lookup_expr="iexact")
    ttl = filters.NumberFilter()
    description = WildcardFilter()
    data = filters.CharFilter(method="filter_data", help_text="One record's data (`*` is a wildcard).")
    zone_id = filters.UUIDFilter()

    class Meta:
        model = RecordSet
        fields = ["name", "type", "status", "ttl", "description", "data", "zone_id"]

    def filter_data(self, queryset, name, value):
        if "*" not in value:
            return queryset.filter(records__contains=[value])
        # records is a JSON list of strings: match one element of its text form.
        pattern = '"' + '[^"]*'.join(wildcard_parts(value, name)) + '"'
        return queryset.annotate(records_text=Cast("records", TextField())).filter(records_text__iregex=pattern)


class PoolFilter(filters.FilterSet):
    name = WildcardFilter(help_text="Pool name (`*` is a wildcard).")

    class Meta:
        model = Pool
        fields = ["name"]
