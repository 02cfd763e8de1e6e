"""Django admin. Zones and recordsets are read-only here (their changes go through zones.services,
like the API's); pools are edited with their servers inline and saved by services.save_pool.
Target options are shown with secret values as ***** and a ***** sent back keeps the stored secret."""
import base64
import binascii

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse

from zones import backends, journal, overview, quotas, reserved
from zones.api.serializers import REDACTED, drop_redacted, redact_options
from zones.services import pools, writes
from zones.models import (
    ApiToken,
    Blacklist,
    NameserverStatus,
    PeriodicRun,
    Pool,
    PoolAlsoNotify,
    PoolNameserver,
    PoolNsRecord,
    PoolTarget,
    ProjectMembership,
    Quota,
    RecordSet,
    TargetStatus,
    Tld,
    TsigKey,
    Zone,
    ZoneChange,
)


def _describe(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
    return " ".join(exc.messages)


# --- pools ---------------------------------------------------------------------------------------


def _backend_choices():
    return [(t, t) for t in backends.types()]


class PoolTargetForm(forms.ModelForm):
    type = forms.ChoiceField(choices=_backend_choices)

    class Meta:
        model = PoolTarget
        fields = ["name", "type", "description", "masters", "options", "tsig_key"]
        help_texts = {"options": "Backend options as JSON. Secret values show as *****; leave them so to keep them.",
                      "masters": 'MiniDNS addresses as a JSON list of "host:port".'}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial["options"] = redact_options(self.instance.options)


class PoolTargetInline(admin.StackedInline):
    model = PoolTarget
    form = PoolTargetForm
    extra = 0


class PoolNsRecordInline(admin.TabularInline):
    model = PoolNsRecord
    extra = 0


class PoolNameserverInline(admin.TabularInline):
    model = PoolNameserver
    extra = 0


class PoolAlsoNotifyInline(admin.TabularInline):
    model = PoolAlsoNotify
    extra = 0


# Each inline's rows become one of save_pool's nested lists.
_POOL_CHILDREN = {
    PoolNsRecord: ("ns_records", ("hostname", "priority")),
    PoolTarget: ("targets", ("name", "type", "description", "masters", "options", "tsig_key")),
    PoolNameserver: ("nameservers", ("host", "port", "name")),
    PoolAlsoNotify: ("also_notifies", ("host", "port")),
}


@admin.register(Pool)
class PoolAdmin(admin.ModelAdmin):
    list_display = ["name", "description", "threshold_percentage", "updated_at"]
    search_fields = ["name", "description"]
    fields = ["name", "description", "threshold_percentage", "notify_source", "tsig_key", "catalog_zone",
              "allowed_projects"]
    inlines = [PoolNsRecordInline, PoolTargetInline, PoolNameserverInline, PoolAlsoNotifyInline]

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ValidationError as exc:  # from save_pool; the admin's transaction rolled everything back
            self.message_user(request, f"Nothing was saved: {_describe(exc)}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def save_model(self, request, obj, form, change):
        pass  # saved with its children in save_related, by the service

    def save_related(self, request, form, formsets, change):
        nested = {}
        for formset in formsets:
            key, fields = _POOL_CHILDREN[formset.model]
            rows = [{f: row.cleaned_data.get(f) for f in fields} for row in formset.forms
                    if row.cleaned_data and not row.cleaned_data.get("DELETE")]
            for row in rows:
                if "options" in row:
                    row["options"] = drop_redacted(row["options"])
                if "tsig_key" in row:
                    row["tsig_key"] = row["tsig_key"].name if row["tsig_key"] else ""
            nested[key] = rows
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        data = form.cleaned_data
        pools.save_pool(form.instance, name=data["name"], description=data.get("description", ""),
                           threshold_percentage=data["threshold_percentage"],
                           notify_source=data.get("notify_source") or "",
                           tsig_key=data["tsig_key"].name if data.get("tsig_key") else "",
                           catalog_zone=data.get("catalog_zone") or "",
                           allowed_projects=data.get("allowed_projects") or [], **nested)

    def delete_model(self, request, obj):
        pools.delete_pool(obj)

    def delete_queryset(self, request, queryset):
        for pool in queryset:
            pools.delete_pool(pool)


class TsigKeyForm(forms.ModelForm):
    """The secret shows as *****; sent back unchanged, the stored secret stays."""

    secret = forms.CharField(help_text="Base64. Shown as *****; leave it so to keep the stored secret.")

    class Meta:
        model = TsigKey
        fields = ["name", "algorithm", "secret"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["secret"] = REDACTED

    def clean_secret(self):
        secret = self.cleaned_data["secret"].strip()
        if secret == REDACTED and self.instance.pk:
            return TsigKey.objects.get(pk=self.instance.pk).secret
        try:
            base64.b64decode(secret, validate=True)
        except (binascii.Error, ValueError):
            raise ValidationError("Not valid base64.") from None
        return secret


@admin.register(TsigKey)
class TsigKeyAdmin(admin.ModelAdmin):
    form = TsigKeyForm
    list_display = ["name", "algorithm", "updated_at"]
    search_fields = ["name"]


# --- zones (read-only) ---------------------------------------------------------------------------


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class RecordSetInline(ReadOnlyInline):
    model = RecordSet
    fields = readonly_fields = ["name", "type", "ttl", "records", "status", "action", "serial", "managed"]
    ordering = ["name", "type"]


class NameserverStatusInline(ReadOnlyInline):
    model = NameserverStatus
    verbose_name_plural = "nameserver status"
    fields = readonly_fields = ["host", "expected_serial", "serial", "ok", "message", "updated_at"]

    @admin.display(description="nameserver")
    def host(self, obj):
        return str(obj.nameserver)


class TargetStatusInline(ReadOnlyInline):
    model = TargetStatus
    verbose_name_plural = "target status"
    fields = readonly_fields = ["target", "action", "serial", "ok", "message", "updated_at"]


class ReadOnlyAdmin(admin.ModelAdmin):
    """Zones and recordsets change only through zones.services (the API or the admin actions)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Zone)
class ZoneAdmin(ReadOnlyAdmin):
    list_display = ["name", "project_id", "status", "action", "serial", "shard", "reason", "pool", "updated_at"]
    list_filter = ["status", "action", "pool"]
    search_fields = ["name", "project_id", "id"]
    list_select_related = ["pool"]
    inlines = [RecordSetInline, NameserverStatusInline, TargetStatusInline]
    actions = ["delete_zones"]

    def has_delete_zones_permission(self, request):
        """The action needs Django's "Can delete zone" permission, not just access to the admin."""
        return request.user.has_perm("zones.delete_zone")

    @admin.action(description="Delete the selected zones (from their pools too)", permissions=["delete_zones"])
    def delete_zones(self, request, queryset):
        actor = journal.Actor(request.user.pk, request.user.get_username(), None, "admin")
        for zone in queryset.filter(deleted_at__isnull=True):
            writes.delete_zone(zone.id, actor=actor)
        self.message_user(request, "The zones are being deleted.", messages.SUCCESS)


@admin.register(RecordSet)
class RecordSetAdmin(ReadOnlyAdmin):
    list_display = ["name", "type", "zone", "ttl", "status", "action", "managed", "updated_at"]
    list_filter = ["type", "status", "managed"]
    search_fields = ["name", "zone__name", "zone__project_id", "id"]
    list_select_related = ["zone"]


@admin.register(PeriodicRun)
class PeriodicRunAdmin(ReadOnlyAdmin):
    """When recovery, sync and purge last ran, and what they did."""

    list_display = ["name", "runs", "started_at", "finished_at", "summary"]


@admin.register(ProjectMembership)
class ProjectMembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "project_id", "role"]
    list_filter = ["role"]
    search_fields = ["user__username", "project_id"]


class QuotaForm(forms.ModelForm):
    resource = forms.ChoiceField(choices=[(r, r) for r in quotas.RESOURCES])
    hard_limit = forms.IntegerField(min_value=quotas.MIN_LIMIT, max_value=quotas.MAX_LIMIT,
                                    help_text="-1: unlimited. Without a row the default from settings applies.")

    class Meta:
        model = Quota
        fields = ["project_id", "resource", "hard_limit"]


@admin.register(Quota)
class QuotaAdmin(admin.ModelAdmin):
    """A project's own limits; saved through zones.quotas, like PATCH /v2/quotas/{project_id}."""

    form = QuotaForm
    list_display = ["project_id", "resource", "hard_limit", "updated_at"]
    list_filter = ["resource"]
    search_fields = ["project_id"]

    def save_model(self, request, obj, form, change):
        if change and {"project_id", "resource"} & set(form.changed_data):
            Quota.objects.filter(pk=obj.pk).delete()
        quotas.set_quotas(obj.project_id, {obj.resource: obj.hard_limit})


# --- API tokens ----------------------------------------------------------------------------------


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are listed and revoked (deleted) here, never made (their key is shown once, to its
    maker: the API or create_api_user) and never shown: no key, no digest, not even in the form."""

    list_display = ["id", "user", "description", "created", "expiry"]
    list_select_related = ["user"]
    search_fields = ["user__username", "description"]
    fields = readonly_fields = ["id", "user", "description", "created", "expiry"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
# --- names a tenant may not take ------------------------------------------------------------------


class ReservedForm(forms.ModelForm):
    """Checks each field with zones.reserved's own validator (the API's), so both refuse the same input."""

    validators: dict = {}

    def clean(self):
        data = super().clean()
        for field, validate in self.validators.items():
            if field in data:
                data[field] = validate(data[field])  # a ValidationError({field: [...]}) lands on the field
        return data


class TldForm(ReservedForm):
    validators = {"name": reserved.tld_name}

    class Meta:
        model = Tld
        fields = ["name", "description"]
        help_texts = {"name": "As Designate writes it: no trailing dot, e.g. com or co.uk. Once any TLD exists, "
                              "every zone must sit strictly below one."}


class BlacklistForm(ReservedForm):
    validators = {"pattern": reserved.blacklist_pattern}

    class Meta:
        model = Blacklist
        fields = ["pattern", "description"]
        help_texts = {"pattern": "A regular expression; zone names it matches (re.search) are refused to non-admins."}


class ReservedAdmin(admin.ModelAdmin):
    """Saved by zones.reserved (a duplicate saved at the same moment is reported, not a 500)."""

    save: staticmethod  # zones.reserved's save function: save(obj, **fields)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ValidationError as exc:
            self.message_user(request, f"Nothing was saved: {_describe(exc)}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def save_model(self, request, obj, form, change):
        self.save(obj, **{field: form.cleaned_data[field] for field in form.Meta.fields})


@admin.register(Tld)
class TldAdmin(ReservedAdmin):
    form = TldForm
    save = staticmethod(reserved.save_tld)
    list_display = ["name", "description", "updated_at"]
    search_fields = ["name", "description"]


@admin.register(Blacklist)
class BlacklistAdmin(ReservedAdmin):
    form = BlacklistForm
    save = staticmethod(reserved.save_blacklist)
    list_display = ["pattern", "description", "updated_at"]
    search_fields = ["pattern", "description"]


# --- the change journal (the audit trail) ----------------------------------------------------------


@admin.register(ZoneChange)
class ZoneChangeAdmin(ReadOnlyAdmin):
    """Every committed change: who (user, token, via the API, the admin or the system), when, the serial
    and what it removed and added. Written only by zones.services; trimmed by the purge sweep."""

    list_display = ["created_at", "zone_name", "action", "serial_before", "serial", "actor_name", "actor_via",
                    "project_id"]
    list_filter = ["action", "actor_via"]
    search_fields = ["zone_name", "project_id", "actor_name"]
    date_hierarchy = "created_at"
    fields = ["id", "created_at", "zone_name", "zone_id", "project_id", "action", "recordset_id", "serial_before",
              "serial", "actor_name", "actor_user_id", "actor_token_id", "actor_via", "zone_before", "zone_after",
              "removed", "added", "incremental"]


# --- the operators' overview (admin/overview/, linked from the admin's index) ------------------------

OVERVIEW_WINDOW = 3600  # seconds of server results the success rates count
admin.site.index_template = "admin/zones/index.html"


def overview_view(request):
    """Per pool: zones by status, the oldest PENDING, zones in ERROR with reasons, each target's and
    nameserver's recent success rate and lag; the outbox, the exists sweep and the periodic runs."""
    context = {**admin.site.each_context(request), "title": "Overview", "window_minutes": OVERVIEW_WINDOW // 60,
               "pools": overview.pools(OVERVIEW_WINDOW), "runs": overview.periodic_runs(),
               "outbox": overview.outbox(), "exists": overview.exists_progress()}
    return TemplateResponse(request, "admin/zones/overview.html", context)
