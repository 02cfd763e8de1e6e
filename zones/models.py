"""The domain: pools of DNS servers, and the zones and recordsets provisioned on them."""
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from knox.models import AbstractAuthToken
from knox.settings import CONSTANTS as KNOX


class Pool(models.Model):
    """A set of targets (servers we configure) and nameservers (servers we poll)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255, unique=True)
    description = models.TextField(blank=True, default="")
    threshold_percentage = models.PositiveSmallIntegerField(default=100)
    # The address NOTIFYs leave from: Knot and NSD accept them only from addresses their ACLs name,
    # PowerDNS only from the zone's primary (MiniDNS). Empty: whatever the worker's host picks.
    notify_source = models.GenericIPAddressField(null=True, blank=True)
    # Signs the pool's zone transfers from MiniDNS (a target's own key wins for that target).
    tsig_key = models.ForeignKey("TsigKey", related_name="pools", null=True, blank=True, on_delete=models.PROTECT)
    # RFC 9432: with a catalog zone name, MiniDNS serves the pool's member zones as that catalog and
    # its consumers create and drop the members themselves (no control channel). The serial is
    # bumped once per debounced burst of membership changes (workers.catalog).
    catalog_zone = models.CharField(max_length=255, null=True, blank=True, unique=True)
    catalog_serial = models.BigIntegerField(default=1, editable=False)
    # Which projects may ask for this pool when they create a zone ("*": every project). Any zone
    # created without a pool goes to the default pool; admins may choose any pool.
    allowed_projects = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class PoolNsRecord(models.Model):
    """An NS record that every zone of the pool carries at its apex."""

    pool = models.ForeignKey(Pool, related_name="ns_records", on_delete=models.CASCADE)
    hostname = models.CharField(max_length=255)
    priority = models.PositiveSmallIntegerField(default=1)

    class Meta:
        ordering = ["priority", "hostname"]
        constraints = [models.UniqueConstraint(fields=["pool", "hostname"], name="uniq_pool_ns_record")]

    def __str__(self):
        return self.hostname


class PoolTarget(models.Model):
    """A server dnsctl configures (through its backend) as a secondary of MiniDNS."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    pool = models.ForeignKey(Pool, related_name="targets", on_delete=models.CASCADE)
    name = models.CharField(max_length=255)
    type = models.CharField(max_length=32)
    description = models.TextField(blank=True, default="")
    options = models.JSONField(default=dict, blank=True)  # backend options, secrets included
    masters = models.JSONField(default=list, blank=True)  # MiniDNS addresses as "host:port"
    tsig_key = models.ForeignKey("TsigKey", related_name="targets", null=True, blank=True, on_delete=models.PROTECT)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["pool", "name"], name="uniq_pool_target_name")]

    def __str__(self):
        return f"{self.name} ({self.type})"

    def master_addresses(self) -> list[tuple[str, int]]:
        result = []
        for entry in self.masters:
            host, _, port = str(entry).rpartition(":")
            result.append((host.strip("[]"), int(port)))
        return result


class PoolNameserver(models.Model):
    """A server that is polled for a zone's serial to decide when the zone is ACTIVE."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    pool = models.ForeignKey(Pool, related_name="nameservers", on_delete=models.CASCADE)
    host = models.CharField(max_length=255)
    port = models.PositiveIntegerField(default=53)
    # The NS hostname tenants know this server by (their propagation view names it, never host:port).
    name = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        ordering = ["host", "port"]
        constraints = [models.UniqueConstraint(fields=["pool", "host", "port"], name="uniq_pool_ns")]

    def __str__(self):
        return f"{self.host}:{self.port}"

    def public_name(self, index: int) -> str:
        """What a tenant is told: the NS name, or "nameserver N" (1-based in the pool's order)."""
        return self.name or f"nameserver {index + 1}"


class PoolAlsoNotify(models.Model):
    """A server that gets a NOTIFY for every change but is not polled."""

    pool = models.ForeignKey(Pool, related_name="also_notifies", on_delete=models.CASCADE)
    host = models.CharField(max_length=255)
    port = models.PositiveIntegerField(default=53)

    class Meta:
        ordering = ["host", "port"]

    def __str__(self):
        return f"{self.host}:{self.port}"


class ProjectMembership(models.Model):
    """Which project (tenant) an API user acts for, and in which role (as Designate's: reader,
    member, admin). The API role is explicit: Django staff status only opens the Django admin."""

    class Role(models.TextChoices):
        READER = "reader"  # reads its project's zones
        MEMBER = "member"  # reads and changes them
        ADMIN = "admin"  # also pools, TLDs, blacklists, quotas, and every project (X-Auth-All-Projects)

    user = models.OneToOneField(settings.AUTH_USER_MODEL, related_name="membership", on_delete=models.CASCADE)
    project_id = models.CharField(max_length=255, db_index=True)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)

    def __str__(self):
        return f"{self.user} in {self.project_id} ({self.role})"


class ShardedQuerySet(models.QuerySet):
    """bulk_create skips save(): fill each row's shard here too, so no write path leaves it unset."""

    def bulk_create(self, objs, *args, **kwargs):
        objs = list(objs)
        for obj in objs:
            obj.fill_shard()
        return super().bulk_create(objs, *args, **kwargs)


class Zone(models.Model):
    class Status(models.TextChoices):
        PENDING = "PENDING"
        ACTIVE = "ACTIVE"
        ERROR = "ERROR"
        DELETED = "DELETED"

    class Action(models.TextChoices):
        CREATE = "CREATE"
        UPDATE = "UPDATE"
        DELETE = "DELETE"
        NONE = "NONE"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project_id = models.CharField(max_length=255, db_index=True)
    pool = models.ForeignKey(Pool, related_name="zones", on_delete=models.PROTECT)
    name = models.CharField(max_length=255)  # absolute, lower case, trailing dot
    email = models.CharField(max_length=255)
    description = models.TextField(blank=True, default="")
    ttl = models.PositiveIntegerField(default=3600)
    serial = models.BigIntegerField(default=1)  # 32-bit SOA serial in a 64-bit column, RFC 1982
    refresh = models.PositiveIntegerField(default=3600)
    retry = models.PositiveIntegerField(default=600)
    expire = models.PositiveIntegerField(default=86400)
    minimum = models.PositiveIntegerField(default=3600)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    action = models.CharField(max_length=16, choices=Action.choices, default=Action.CREATE, db_index=True)
    reason = models.TextField(blank=True, default="")  # why the zone is in ERROR, for operators
    tenant_reason = models.TextField(blank=True, default="")  # the same for the zone's project: no server details
    shard = models.PositiveSmallIntegerField(db_index=True, editable=False)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # When the current change was handed to Celery; None once its outcome is recorded. Recovery
    # leaves a zone alone while its work is in flight (younger than the maximum propagation time).
    enqueued_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The serial last handed to the pipeline: a change waits (PENDING, pushed_serial != serial) until
    # a zone_action picks it up, together with every other waiting change, in one batch.
    pushed_serial = models.BigIntegerField(null=True, blank=True, editable=False)
    # The tenant's recordsets and records (SOA and apex NS not counted), kept by zones.services under
    # the zone's row lock, so a quota check never has to count a 100,000-record zone.
    recordset_count = models.PositiveIntegerField(default=0, editable=False)
    record_count = models.PositiveIntegerField(default=0, editable=False)

    objects = ShardedQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["name"], condition=Q(deleted_at__isnull=True), name="uniq_live_zone_name"),
        ]
        # The exists sweep walks one shard's live zones in id order, a batch at a time.
        indexes = [models.Index(fields=["shard", "id"], condition=Q(deleted_at__isnull=True), name="zone_live_shard_id")]

    def __str__(self):
        return self.name

    def fill_shard(self):
        self.shard = shard_for(self.id)

    def save(self, *args, **kwargs):
        self.fill_shard()
        super().save(*args, **kwargs)

    @property
    def is_live(self) -> bool:
        return self.deleted_at is None


SHARDS = 4096  # every zone in one of them (shard_for)


def shard_for(zone_id) -> int:
    """Shard 0..4095: the first three hex digits of the zone's UUID."""
    return int(str(zone_id).replace("-", "")[:3], 16)


class RecordSet(models.Model):
    class Status(models.TextChoices):
        PENDING = "PENDING"
        ACTIVE = "ACTIVE"
        ERROR = "ERROR"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    zone = models.ForeignKey(Zone, related_name="recordsets", on_delete=models.CASCADE)
    name = models.CharField(max_length=255)  # absolute, lower case, trailing dot
    type = models.CharField(max_length=16)
    ttl = models.PositiveIntegerField(null=True, blank=True)  # None: the zone's TTL
    description = models.TextField(blank=True, default="")
    records = models.JSONField(default=list)  # rdata in canonical text form
    managed = models.BooleanField(default=False)  # SOA and apex NS: kept by dnsctl, not by users
    serial = models.BigIntegerField(default=0)  # the zone serial that carried the last change
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    action = models.CharField(max_length=16, choices=Zone.Action.choices, default=Zone.Action.CREATE)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    zone_shard = models.PositiveSmallIntegerField(db_index=True, editable=False)  # the zone's shard

    objects = ShardedQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["zone", "name", "type"], name="uniq_recordset")]

    def __str__(self):
        return f"{self.name} {self.type}"

    def fill_shard(self):
        self.zone_shard = shard_for(self.zone_id)

    def save(self, *args, **kwargs):
        self.fill_shard()
        super().save(*args, **kwargs)


class TargetStatus(models.Model):
    """The last result of a zone action on one target."""

    zone = models.ForeignKey(Zone, related_name="target_statuses", on_delete=models.CASCADE)
    target = models.ForeignKey(PoolTarget, related_name="zone_statuses", on_delete=models.CASCADE)
    action = models.CharField(max_length=16, choices=Zone.Action.choices)
    serial = models.BigIntegerField()
    ok = models.BooleanField()
    message = models.TextField(blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["zone", "target"], name="uniq_target_status")]


class NameserverStatus(models.Model):
    """The last serial a nameserver was seen serving for a zone (None: not served or no answer)."""

    zone = models.ForeignKey(Zone, related_name="nameserver_statuses", on_delete=models.CASCADE)
    nameserver = models.ForeignKey(PoolNameserver, related_name="zone_statuses", on_delete=models.CASCADE)
    expected_serial = models.BigIntegerField()
    serial = models.BigIntegerField(null=True, blank=True)
    ok = models.BooleanField()
    message = models.TextField(blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["zone", "nameserver"], name="uniq_ns_status")]


class PeriodicRun(models.Model):
    """The last run of each periodic sweep (recovery, sync, purge), so two beat nodes don't both run it."""

    name = models.CharField(max_length=64, primary_key=True)
    runs = models.PositiveBigIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    summary = models.TextField(blank=True, default="")

    def __str__(self):
        return self.name


class OutboxEvent(models.Model):
    """A zone change's event, written in the change's own transaction (so it exists iff the change
    committed). The relay publishes unpublished rows in id order and gives each the next `seq`: the
    publish order, contiguous, which is the cursor of GET /v2/events and travels in the bus entry,
    so a consumer can see a gap and fill it from the API."""

    event_id = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=32, db_index=True)
    zone_id = models.UUIDField(db_index=True)
    payload = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    seq = models.BigIntegerField(null=True, blank=True, unique=True)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["id"], condition=Q(seq__isnull=True), name="outbox_unpublished")]

    def __str__(self):
        return f"{self.type} {self.zone_id}"


class ExistsSweep(models.Model):
    """How far the exists sweep of one shard got in one period. A producer holds the row locked while
    it emits a batch and commits the last zone id with it, so whoever owns the shard next (after a
    rebalance or a crash) continues where the last committed batch ended, and nobody repeats it."""

    period = models.BigIntegerField()  # floor(time / EXISTS_INTERVAL)
    shard = models.PositiveSmallIntegerField()
    last_zone_id = models.UUIDField(null=True, blank=True)
    done = models.BooleanField(default=False)
    swept_by = models.CharField(max_length=255, blank=True, default="")  # tooz member of the last batch
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["period", "shard"], name="uniq_exists_sweep")]

    def __str__(self):
        return f"{self.period}/{self.shard}"


class TsigKey(models.Model):
    """A TSIG key (RFC 8945) for zone transfers from MiniDNS, attached to a pool or a target.
    The secret never leaves the database except to MiniDNS and the backends."""

    class Algorithm(models.TextChoices):
        HMAC_SHA256 = "hmac-sha256"
        HMAC_SHA384 = "hmac-sha384"
        HMAC_SHA512 = "hmac-sha512"
        HMAC_SHA224 = "hmac-sha224"
        HMAC_SHA1 = "hmac-sha1"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255, unique=True)  # the key's name on every server, e.g. "dnsctl-xfr"
    algorithm = models.CharField(max_length=32, choices=Algorithm.choices, default=Algorithm.HMAC_SHA256)
    secret = models.CharField(max_length=255)  # base64
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def as_dict(self) -> dict:
        return {"name": self.name, "algorithm": self.algorithm, "secret": self.secret}


class Quota(models.Model):
    """A project's own limit for one resource (zones.quotas.RESOURCES); without a row the default
    from settings.QUOTAS applies. -1 means unlimited, as in Designate."""

    project_id = models.CharField(max_length=255, db_index=True)
    resource = models.CharField(max_length=32)
    hard_limit = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["project_id", "resource"]
        constraints = [models.UniqueConstraint(fields=["project_id", "resource"], name="uniq_quota")]

    def __str__(self):
        return f"{self.project_id} {self.resource}={self.hard_limit}"


# --- API tokens (django-rest-knox's digests) -------------------------------------------------------


class ApiToken(AbstractAuthToken):
    """An API token. Only the SHA-512 digest of its key is stored (django-rest-knox's), so the key
    is shown once, when it is made (zones.accounts.issue_token), and a copy of the database holds
    no usable key. A call's key is found by its digest: one unique-index lookup."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)  # what the API and admin show
    digest = models.CharField(max_length=KNOX.DIGEST_LENGTH, unique=True, editable=False)
    token_key = None  # knox keeps the key's first characters in clear to find the row; the digest does here
    description = models.CharField(max_length=255, blank=True, default="")

    objects = models.Manager()  # knox's manager fills token_key: tokens are made by accounts.issue_token

    class Meta:
        ordering = ["created", "id"]
        verbose_name = "API token"

    def __str__(self):
        return f"{self.user} token {self.id}"

    @property
    def expired(self) -> bool:
        return self.expiry is not None and self.expiry <= timezone.now()


# --- names a tenant may not take -------------------------------------------------------------------


class Tld(models.Model):
    """A top-level domain the service accepts zones under (Designate's TLDs): once any exists, every
    zone must sit strictly below one. Named as Designate names them: lower case, no trailing dot."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255, unique=True)  # "com", "co.uk"
    description = models.CharField(max_length=160, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = "TLD"

    def __str__(self):
        return self.name


class Blacklist(models.Model):
    """A regular expression (Designate's blacklist): zone names it matches (re.search) are refused to
    everyone but admins."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    pattern = models.CharField(max_length=255, unique=True)
    description = models.CharField(max_length=160, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self):
        return self.pattern


# --- the change journal --------------------------------------------------------------------------


class ZoneChange(models.Model):
    """One committed change of a zone, written by zones.services in the change's own transaction (so
    it exists exactly when the change committed): who made it, the serial before and after, the zone's
    fields before -> after and the RRsets it removed and added as [owner, type, ttl, [rdata]] (TTLs as
    served, the SOA's old and new record included). This one record is the journal MiniDNS answers IXFR
    from (zones.journal), the audit trail of the API and the admin, and the actor of the outbox event.

    No foreign keys: a purged zone's or a deleted user's history stays until the journal is trimmed."""

    id = models.BigAutoField(primary_key=True)  # taken under the zone's row lock: a zone's changes in order
    zone_id = models.UUIDField()
    zone_name = models.CharField(max_length=255)
    project_id = models.CharField(max_length=255, db_index=True)
    action = models.CharField(max_length=32)  # zones.journal.ACTIONS, e.g. "recordset.update"
    recordset_id = models.UUIDField(null=True, blank=True)
    serial_before = models.BigIntegerField(null=True, blank=True)  # None for a zone's creation
    serial = models.BigIntegerField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor_user_id = models.BigIntegerField(null=True, blank=True)
    actor_name = models.CharField(max_length=150)  # the username, or "system"
    actor_token_id = models.UUIDField(null=True, blank=True)  # the API token, if the change came with one
    actor_via = models.CharField(max_length=16)  # api, admin or system
    zone_before = models.JSONField(default=dict)
    zone_after = models.JSONField(default=dict)
    removed = models.JSONField(default=list)
    added = models.JSONField(default=list)
    # False when removed/added do not list everything the change did (a zone TTL change moves every
    # inherited TTL, which is not read): an IXFR never crosses such a change.
    incremental = models.BooleanField(default=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["zone_id", "serial_before"], name="zonechange_zone_serial"),
            models.Index(fields=["zone_id", "id"], name="zonechange_zone_id"),
        ]

    def __str__(self):
        return f"{self.zone_name} {self.action} {self.serial_before} -> {self.serial}"


# --- zone import and export tasks (Designate's /v2/zones/tasks/...) --------------------------------


class ZoneTask(models.Model):
    """What an import and an export share: Designate's task fields. A task belongs to its project
    (tenants see their own, admins every project's with X-Auth-All-Projects); its work runs in Celery."""

    class Status(models.TextChoices):
        PENDING = "PENDING"
        COMPLETE = "COMPLETE"
        ERROR = "ERROR"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project_id = models.CharField(max_length=255, db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    message = models.TextField(blank=True, default="")
    zone_id = models.UUIDField(null=True, blank=True)  # no foreign key: the task outlives its zone
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["status", "updated_at"], name="%(class)s_status_updated")]  # the purge


class ZoneImport(ZoneTask):
    """A zone file to import as a new zone (zones.imports), or to check only (a dry run). The file
    waits here, not in the broker, and is dropped once the import has finished."""

    zonefile = models.TextField(blank=True, default="")
    pool_id = models.CharField(max_length=64, blank=True, default="")  # the attributes' pool_id, if any
    admin = models.BooleanField(default=False)  # sent by an API admin (may take reserved names, any pool)
    actor = models.JSONField(default=dict)  # zones.journal.Actor of the caller, for the zone's change
    dry_run = models.BooleanField(default=False)  # check the file, write nothing: the plan is the result
    plan = models.JSONField(null=True, blank=True)  # a dry run's result (zones.imports.plan)

    class Meta(ZoneTask.Meta):
        pass

    def __str__(self):
        return f"import {self.id} {self.status}"


class ZoneExport(ZoneTask):
    """A zone written out as a zone file (zones.imports.export) when the export ran: the file is kept
    with the serial it shows until the export is deleted."""

    zone_name = models.CharField(max_length=255, blank=True, default="")
    serial = models.BigIntegerField(null=True, blank=True)
    zonefile = models.TextField(blank=True, default="")

    class Meta(ZoneTask.Meta):
        pass

    def __str__(self):
        return f"export {self.id} {self.status}"
