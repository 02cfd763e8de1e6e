"""JSON shapes of the Designate v2 API. Input serializers only check the request's shape (which
fields, which JSON types); what a value means is for zones.services to decide."""
import copy
from collections.abc import Mapping

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.reverse import reverse

from zones.models import Pool, PoolTarget, RecordSet, Zone

from .auth import is_admin

REDACTED = "*****"
SECRET_WORDS = ("secret", "key", "password", "token")


def is_secret(option: str) -> bool:
    return any(word in str(option).lower() for word in SECRET_WORDS)


def redact_options(options: dict) -> dict:
    """Target options as shown to people: secret values replaced by REDACTED."""
    return {k: (REDACTED if is_secret(k) else v) for k, v in (options or {}).items()}


def drop_redacted(options: dict) -> dict:
    """Options sent back with REDACTED values: leave those out, so the stored secret stays."""
    return {k: v for k, v in (options or {}).items() if v != REDACTED}


def _link(serializer, name, **kwargs):
    """{"self": the object's URL}, as DRF's reverse() makes it: reversed once per request and view name
    with markers for the ids, which are then put in (a list's hundreds of objects share one)."""
    request = serializer.context.get("request")
    if request is None:
        return {"self": reverse(f"api:{name}", kwargs=kwargs)}
    templates = request.__dict__.setdefault("_dnsctl_links", {})
    template = templates.get(name)
    if template is None:
        # "~" is kept as it is in a path and cannot be in a host; the path comes before any query.
        template = templates[name] = reverse(f"api:{name}", kwargs={k: f"~{k}~" for k in kwargs}, request=request)
    url = template
    for key, value in kwargs.items():
        url = url.replace(f"~{key}~", str(value), 1)
    return {"self": url}


_DATETIME = serializers.DateTimeField(read_only=True)  # its to_representation is DRF's ISO 8601 with "Z"


def _time(value):
    return None if value is None else _DATETIME.to_representation(value)


# --- input -------------------------------------------------------------------------------------


class StrictString(serializers.CharField):
    """A JSON string, and only that: DRF's CharField turns 5 into "5" and 1.5 into "1.5", so a name
    or a record sent as a number would be validated as text the client never wrote."""

    default_error_messages = {"invalid": "Must be a JSON string, not {kind}."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid", kind=_json_kind(data))
        return super().to_internal_value(data)


class StrictInteger(serializers.IntegerField):
    """A JSON integer, and only that: not "300", 300.0 or true."""

    default_error_messages = {"invalid": "Must be a JSON integer, not {kind}."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid", kind=_json_kind(data) if not isinstance(data, str) else "a string")
        return super().to_internal_value(data)


def _json_kind(value) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {dict: "an object", list: "an array"}.get(type(value), type(value).__name__)


def _only_primary(value):
    if value != "PRIMARY":
        raise serializers.ValidationError(f"Only PRIMARY zones are supported; '{value}' is not.")


DESCRIPTION = {"required": False, "allow_blank": True, "allow_null": True, "max_length": 160}  # Designate's cap


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know: a typo or a read-only field is a 400, not a silent no-op."""

    read_only_names: tuple[str, ...] = ()  # refused with "cannot be changed"
    ignored_names: tuple[str, ...] = ()  # output-only fields dropped, so a GET body can be sent back
    _built: dict = {}

    def get_fields(self):
        """DRF deep-copies the declared fields for each instance (every request), running each one's
        __init__ again: 5% of an API write's CPU. Fields keep nothing of a validation, and binding one to
        its serializer only sets attributes of it, so a shallow copy of fields made once per class does,
        unless a field is a serializer (which keeps its data): those classes copy as DRF does."""
        cls = type(self)
        built = StrictSerializer._built.get(cls)
        if built is None:
            built = super().get_fields()
            if any(isinstance(field, serializers.BaseSerializer) for field in built.values()):
                return built
            StrictSerializer._built[cls] = built
        return {name: copy.copy(field) for name, field in built.items()}

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            data = {k: v for k, v in data.items() if k not in self.ignored_names}
            errors = {}
            for field in data:
                if field in self.fields:
                    continue
                errors[field] = ["This field cannot be changed." if field in self.read_only_names
                                 else "Unknown field."]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


ZONE_READ_ONLY = ("id", "pool_id", "project_id", "name", "serial", "status", "action", "type", "masters",
                  "transferred_at", "version", "created_at", "updated_at", "attributes", "links", "shard", "reason")


class ZoneCreateSerializer(StrictSerializer):
    name = StrictString(trim_whitespace=False)
    email = StrictString(trim_whitespace=False)
    ttl = StrictInteger(required=False, allow_null=True)
    description = StrictString(**DESCRIPTION)
    type = StrictString(required=False, validators=[_only_primary], help_text="PRIMARY, the only type there is.")
    attributes = serializers.DictField(required=False, help_text='Designate\'s scheduler hints: {"pool_id": id} '
                                                                 "asks for a pool the project may use.")

    def validate_attributes(self, value):
        unknown = sorted(set(value) - {"pool_id"})
        if unknown:
            raise serializers.ValidationError(f"Unknown attribute {', '.join(unknown)}; known: pool_id.")
        if not isinstance(value.get("pool_id", ""), str):
            raise serializers.ValidationError("pool_id must be a string.")
        return value


class ZoneUpdateSerializer(StrictSerializer):
    read_only_names = ZONE_READ_ONLY
    email = StrictString(required=False, trim_whitespace=False)
    ttl = StrictInteger(required=False)
    description = StrictString(**DESCRIPTION)


RECORDSET_READ_ONLY = ("id", "zone_id", "zone_name", "project_id", "name", "type", "status", "action",
                       "version", "created_at", "updated_at", "links")


class RecordSetCreateSerializer(StrictSerializer):
    name = StrictString(trim_whitespace=False)
    type = StrictString()
    records = serializers.ListField(child=StrictString(trim_whitespace=False, allow_blank=True))
    ttl = StrictInteger(required=False, allow_null=True)
    description = StrictString(**DESCRIPTION)


class RecordSetUpdateSerializer(StrictSerializer):
    read_only_names = RECORDSET_READ_ONLY
    records = serializers.ListField(child=StrictString(trim_whitespace=False, allow_blank=True), required=False)
    ttl = StrictInteger(required=False, allow_null=True)
    description = StrictString(**DESCRIPTION)


NAME = {"max_length": 255}  # the models' column width: longer is a 400, not a database error


class NsRecordInputSerializer(StrictSerializer):
    hostname = StrictString(**NAME)
    priority = StrictInteger(required=False, min_value=0, default=1)


class TargetInputSerializer(StrictSerializer):
    ignored_names = ("id",)
    name = StrictString(**NAME)
    type = StrictString(max_length=32)
    description = StrictString(required=False, allow_blank=True, default="", max_length=160)
    masters = serializers.ListField(child=StrictString(), required=False, default=list)
    options = serializers.DictField(required=False, default=dict)
    tsig_key = StrictString(required=False, allow_blank=True, allow_null=True, **NAME,
                            help_text="Name of the TSIG key that signs this target's transfers.")


class HostPortInputSerializer(StrictSerializer):
    ignored_names = ("id",)
    host = StrictString(**NAME)
    port = StrictInteger(required=False, default=53)


class NameserverInputSerializer(HostPortInputSerializer):
    name = StrictString(required=False, allow_blank=True, **NAME,
                        help_text="The NS hostname tenants know this server by (their propagation view).")


class PoolInputSerializer(StrictSerializer):
    ignored_names = ("id", "project_id", "created_at", "updated_at", "links", "attributes")
    name = StrictString(**NAME)
    description = StrictString(**DESCRIPTION)
    threshold_percentage = StrictInteger(required=False)
    ns_records = NsRecordInputSerializer(many=True, required=False)
    targets = TargetInputSerializer(many=True, required=False)
    nameservers = NameserverInputSerializer(many=True, required=False)
    also_notifies = HostPortInputSerializer(many=True, required=False)
    notify_source = StrictString(required=False, allow_blank=True, allow_null=True,
                                 help_text="IP address NOTIFYs are sent from; empty clears it.")
    tsig_key = StrictString(required=False, allow_blank=True, allow_null=True, **NAME,
                            help_text="Name of the TSIG key that signs the pool's transfers; empty clears it.")
    catalog_zone = StrictString(required=False, allow_blank=True, allow_null=True, **NAME,
                                help_text="RFC 9432 catalog zone that provisions the pool's servers; empty clears it.")
    allowed_projects = serializers.ListField(child=StrictString(max_length=255), required=False,
                                             help_text='Projects that may create zones here ("*": all).')

    def to_internal_value(self, data):
        values = super().to_internal_value(data)
        for target in values.get("targets", []):
            if "options" in target:
                target["options"] = drop_redacted(target["options"])
        return values


# --- output ------------------------------------------------------------------------------------


class BuiltOnce:
    """An output-only ModelSerializer's fields built from the model once per class, then copied for
    each instance: DRF maps every model field to a serializer field again on each instantiation (every
    response) and deep-copies each (re-running its __init__). Binding a field to its serializer only
    sets attributes of the field, so for read-only fields a shallow copy of each is enough."""

    _built: dict = {}

    def get_fields(self):
        cls = type(self)
        if cls not in BuiltOnce._built:
            BuiltOnce._built[cls] = super().get_fields()
            assert all(field.read_only for field in BuiltOnce._built[cls].values()), f"{cls.__name__} is not output-only"
        return {name: copy.copy(field) for name, field in BuiltOnce._built[cls].items()}


class ZoneSerializer(BuiltOnce, serializers.ModelSerializer):
    """A zone as Designate shows it. to_representation writes the fields below straight from the
    zone: DRF's walk over its fields cost a tenth of an API write's CPU; tests/test_api.py compares the
    two on every kind of value."""

    pool_id = serializers.UUIDField(read_only=True)
    type = serializers.SerializerMethodField()
    masters = serializers.SerializerMethodField()
    attributes = serializers.SerializerMethodField()
    transferred_at = serializers.SerializerMethodField()
    links = serializers.SerializerMethodField()
    reason = serializers.SerializerMethodField()

    class Meta:
        model = Zone
        fields = ["id", "pool_id", "project_id", "name", "email", "ttl", "serial", "status", "action",
                  "description", "masters", "type", "transferred_at", "version", "created_at", "updated_at",
                  "attributes", "links", "shard", "reason"]
        read_only_fields = fields

    def to_representation(self, obj):
        return {"id": str(obj.id), "pool_id": str(obj.pool_id), "project_id": obj.project_id, "name": obj.name,
                "email": obj.email, "ttl": obj.ttl, "serial": obj.serial, "status": str(obj.status),
                "action": str(obj.action), "description": obj.description, "masters": self.get_masters(obj),
                "type": self.get_type(obj), "transferred_at": self.get_transferred_at(obj), "version": obj.version,
                "created_at": _time(obj.created_at), "updated_at": _time(obj.updated_at),
                "attributes": self.get_attributes(obj), "links": self.get_links(obj), "shard": obj.shard,
                "reason": self.get_reason(obj)}

    def get_type(self, obj) -> str:
        return "PRIMARY"

    def get_masters(self, obj) -> list[str]:
        return []

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_attributes(self, obj):
        return {}

    @extend_schema_field(OpenApiTypes.DATETIME)
    def get_transferred_at(self, obj):
        return None

    def get_links(self, obj) -> dict[str, str]:
        return _link(self, "zone-detail", zone_id=obj.id)

    def get_reason(self, obj) -> str:
        """Why the zone is in ERROR: the operator's detail for admins, the tenant's wording for others."""
        request = self.context.get("request")
        return obj.reason if request is not None and is_admin(request) else obj.tenant_reason


class RecordSetSerializer(BuiltOnce, serializers.ModelSerializer):
    """A recordset as Designate shows it; to_representation as ZoneSerializer's."""

    zone_id = serializers.UUIDField(read_only=True)
    zone_name = serializers.CharField(source="zone.name", read_only=True)
    project_id = serializers.CharField(source="zone.project_id", read_only=True)
    records = serializers.ListField(child=serializers.CharField(), read_only=True)
    links = serializers.SerializerMethodField()

    class Meta:
        model = RecordSet
        fields = ["id", "zone_id", "zone_name", "project_id", "name", "type", "ttl", "records", "description",
                  "status", "action", "version", "created_at", "updated_at", "links"]
        read_only_fields = fields

    def to_representation(self, obj):
        zone = obj.zone
        return {"id": str(obj.id), "zone_id": str(obj.zone_id), "zone_name": zone.name, "project_id": zone.project_id,
                "name": obj.name, "type": obj.type, "ttl": obj.ttl,
                "records": [None if record is None else str(record) for record in obj.records],
                "description": obj.description, "status": str(obj.status), "action": str(obj.action),
                "version": obj.version, "created_at": _time(obj.created_at), "updated_at": _time(obj.updated_at),
                "links": self.get_links(obj)}

    def get_links(self, obj) -> dict[str, str]:
        return _link(self, "recordset-detail", zone_id=obj.zone_id, recordset_id=obj.id)


class NsRecordSerializer(serializers.Serializer):
    hostname = serializers.CharField()
    priority = serializers.IntegerField()


class NameserverListSerializer(serializers.Serializer):
    nameservers = NsRecordSerializer(many=True)


class PoolSerializer(serializers.ModelSerializer):
    """What every user sees of a pool."""

    attributes = serializers.SerializerMethodField()
    ns_records = NsRecordSerializer(many=True, read_only=True)
    project_id = serializers.SerializerMethodField()
    links = serializers.SerializerMethodField()

    class Meta:
        model = Pool
        fields = ["id", "name", "description", "attributes", "ns_records", "project_id", "created_at",
                  "updated_at", "links"]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_attributes(self, obj):
        return {}

    @extend_schema_field(OpenApiTypes.STR)
    def get_project_id(self, obj):
        return None

    def get_links(self, obj) -> dict[str, str]:
        return _link(self, "pool-detail", pool_id=obj.id)


class TargetSerializer(serializers.ModelSerializer):
    options = serializers.SerializerMethodField()
    tsig_key = serializers.SlugRelatedField(slug_field="name", read_only=True)  # the name, never the secret

    class Meta:
        model = PoolTarget
        fields = ["id", "name", "type", "description", "masters", "options", "tsig_key"]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_options(self, obj):
        return redact_options(obj.options)


class NameserverSerializer(serializers.Serializer):
    id = serializers.UUIDField(read_only=True)
    host = serializers.CharField()
    port = serializers.IntegerField()
    name = serializers.CharField()


class AlsoNotifySerializer(serializers.Serializer):
    host = serializers.CharField()
    port = serializers.IntegerField()


class PoolAdminSerializer(PoolSerializer):
    """What admins see: the servers too, with target secrets redacted."""

    targets = TargetSerializer(many=True, read_only=True)
    nameservers = NameserverSerializer(many=True, read_only=True)
    also_notifies = AlsoNotifySerializer(many=True, read_only=True)
    tsig_key = serializers.SlugRelatedField(slug_field="name", read_only=True)  # the name, never the secret

    class Meta(PoolSerializer.Meta):
        fields = PoolSerializer.Meta.fields + ["threshold_percentage", "targets", "nameservers", "also_notifies",
                                               "notify_source", "tsig_key", "catalog_zone", "allowed_projects"]
        read_only_fields = fields


class TargetSyncSerializer(serializers.Serializer):
    since = StrictString(help_text="ISO 8601; every change since then is replayed (naive = UTC).")
