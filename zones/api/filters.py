"""Designate's list filters: exact and case-insensitive, with `*` as a wildcard."""
import re

import django_filters as filters
from django.db.models import TextField
from django.db.models.functions import Cast

from zones.models import RecordSet, Zone


def wildcard_regex(value: str) -> str:
    return "^" + ".*".join(re.escape(part) for part in value.split("*")) + "$"


def match(queryset, field: str, value: str):
    if "*" in value:
        return queryset.filter(**{f"{field}__iregex": wildcard_regex(value)})
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
        pattern = '"' + '[^"]*'.join(re.escape(part) for part in value.split("*")) + '"'
        return queryset.annotate(records_text=Cast("records", TextField())).filter(records_text__iregex=pattern)
