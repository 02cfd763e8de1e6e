"""Services: serial bumps, status/action transitions, and that bad input writes nothing."""
import pytest
from django.core.exceptions import ValidationError

from zones.models import RecordSet, Zone
from zones.serials import is_newer
from zones.services import pipeline, pools, writes


@pytest.fixture
def pool(db):
    return pools.save_pool(None, name="default", ns_records=[{"hostname": "ns1.example.net.", "priority": 1}])


@pytest.fixture
def zone(pool):
    return writes.create_zone(project_id="p1", name="example.com.", email="admin@example.com")


def test_create_zone_is_pending_with_soa_and_ns(zone):
    assert (zone.status, zone.action) == ("PENDING", "CREATE")
    assert 0 <= zone.shard <= 4095
    soa = zone.recordsets.get(type="SOA")
    assert soa.managed and f" {zone.serial} " in soa.records[0]
    assert soa.records[0].startswith("ns1.example.net. admin.example.com. ")
    assert zone.recordsets.get(type="NS").records == ["ns1.example.net."]


def test_every_change_bumps_the_serial_once(zone):
    serials = [zone.serial]
    rs = writes.create_recordset(zone.id, name="www", type="A", records=["192.0.2.1"])
    serials.append(Zone.objects.get(id=zone.id).serial)
    writes.update_recordset(zone.id, rs.id, records=["192.0.2.2"])
    serials.append(Zone.objects.get(id=zone.id).serial)
    writes.update_zone(zone.id, ttl=600)
    serials.append(Zone.objects.get(id=zone.id).serial)
    assert all(is_newer(b, a) for a, b in zip(serials, serials[1:]))
    soa = RecordSet.objects.get(zone=zone, type="SOA")
    assert f" {serials[-1]} " in soa.records[0]


def test_no_op_changes_keep_the_serial(zone):
    rs = writes.create_recordset(zone.id, name="www", type="A", records=["192.0.2.1"])
    before = Zone.objects.get(id=zone.id)
    writes.update_recordset(zone.id, rs.id, records=["192.0.2.1"])
    writes.update_zone(zone.id, ttl=before.ttl, email=before.email, description="only words")
    after = Zone.objects.get(id=zone.id)
    assert (after.serial, after.version) == (before.serial, before.version)
    assert after.description == "only words"


def test_update_before_create_finished_keeps_create(zone):
    writes.create_recordset(zone.id, name="www", type="A", records=["192.0.2.1"])
    assert Zone.objects.get(id=zone.id).action == "CREATE"


def test_finish_for_an_older_serial_changes_nothing(zone):
    old = zone.serial
    writes.create_recordset(zone.id, name="www", type="A", records=["192.0.2.1"])
    assert pipeline.finish_zone_action(zone.id, "CREATE", old, True) is False
    assert Zone.objects.get(id=zone.id).status == "PENDING"
    current = Zone.objects.get(id=zone.id)
    assert pipeline.finish_zone_action(zone.id, "CREATE", current.serial, True) is True
    current.refresh_from_db()
    assert (current.status, current.action) == ("ACTIVE", "NONE")
    assert set(current.recordsets.values_list("status", flat=True)) == {"ACTIVE"}


def test_error_keeps_the_action_and_the_reason(zone):
    pipeline.finish_zone_action(zone.id, "CREATE", zone.serial, False, "bind-1: connection refused")
    zone.refresh_from_db()
    assert (zone.status, zone.action, zone.reason) == ("ERROR", "CREATE", "bind-1: connection refused")


def test_a_batch_of_outcomes_is_recorded_together_and_a_newer_change_wins(pool):
    zones = {n: writes.create_zone(project_id="p1", name=f"{n}.example.com.", email="a@example.com")
             for n in ("ok", "bad", "gone", "moved", "worse")}
    writes.create_recordset(zones["ok"].id, name="www", type="A", records=["192.0.2.1"])
    writes.delete_zone(zones["gone"].id)
    refs = {str(z.id): z for z in pipeline.claim_changes(10)}
    ref = {n: refs[str(z.id)] for n, z in zones.items()}
    writes.update_zone(zones["moved"].id, ttl=600)  # a newer change: the older result is dropped
    outcomes = [pipeline.Outcome(ref["ok"], True), pipeline.Outcome(ref["gone"], True),
                pipeline.Outcome(ref["moved"], True), pipeline.Outcome(ref["bad"], False, "bind-1: refused", "down"),
                pipeline.Outcome(ref["worse"], False, "bind-1: refused", "down")]
    assert pipeline.finish_outcomes(outcomes, pipeline.Mode.CHANGE) == 4
    now = {n: Zone.objects.get(id=z.id) for n, z in zones.items()}
    assert (now["ok"].status, now["ok"].action, now["ok"].enqueued_at) == ("ACTIVE", "NONE", None)
    assert set(now["ok"].recordsets.values_list("status", "action")) == {("ACTIVE", "NONE")}
    assert (now["gone"].status, now["gone"].action) == ("DELETED", "NONE") and now["gone"].deleted_at
    assert (now["moved"].status, now["moved"].action, now["moved"].ttl) == ("PENDING", "CREATE", 600)
    for name in ("bad", "worse"):
        assert (now[name].status, now[name].action, now[name].reason, now[name].tenant_reason) == (
            "ERROR", "CREATE", "bind-1: refused", "down")
        assert set(now[name].recordsets.values_list("status", flat=True)) == {"ERROR"}


def test_one_outcome_that_cannot_be_recorded_does_not_stop_the_others(pool, monkeypatch):
    zones = [writes.create_zone(project_id="p1", name=f"z{i}.example.com.", email="a@example.com") for i in range(3)]
    refs = pipeline.claim_changes(10)
    record = pipeline._record_outcomes

    def broken(outcomes, mode):
        if any(o.ref.id == str(zones[1].id) for o in outcomes):
            raise RuntimeError("this zone's row is broken")
        return record(outcomes, mode)

    monkeypatch.setattr(pipeline, "_record_outcomes", broken)
    assert pipeline.finish_outcomes([pipeline.Outcome(r, True) for r in refs], pipeline.Mode.CHANGE) == 2
    assert [Zone.objects.get(id=z.id).status for z in zones] == ["ACTIVE", "PENDING", "ACTIVE"]


def test_a_failed_sync_puts_the_zone_in_error_with_an_update_pending(pool):
    zone = writes.create_zone(project_id="p1", name="synced.example.com.", email="a@example.com")
    pipeline.finish_zone_action(zone.id, "CREATE", zone.serial, True)
    ref = pipeline.ZoneRef(str(zone.id), zone.name, "UPDATE", zone.serial, str(zone.pool_id))
    assert pipeline.finish(ref, pipeline.Mode.SYNC, True)
    assert pipeline.finish(ref, pipeline.Mode.SYNC, False, "bind-1: refused")
    zone.refresh_from_db()
    assert (zone.status, zone.action, zone.reason) == ("ERROR", "UPDATE", "Sync failed: bind-1: refused")


def test_delete_then_deleted_frees_the_name(zone):
    deleting = writes.delete_zone(zone.id)
    assert (deleting.status, deleting.action) == ("PENDING", "DELETE")
    with pytest.raises(ValidationError):
        writes.create_zone(project_id="p1", name="example.com.", email="a@example.com")
    assert pipeline.finish_zone_action(zone.id, "DELETE", deleting.serial, True)
    zone.refresh_from_db()
    assert zone.status == "DELETED" and zone.deleted_at is not None
    again = writes.create_zone(project_id="p1", name="example.com.", email="a@example.com")
    assert again.id != zone.id


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"name": "example.org"}, "name"),
        ({"name": "org."}, "name"),
        ({"name": "a" * 64 + ".org."}, "name"),
        ({"name": ("a" * 60 + ".") * 5}, "name"),
        ({"name": "bad_chars!.org."}, "name"),
        ({"email": "nobody"}, "email"),
        ({"ttl": 0}, "ttl"),
        ({"ttl": "3600"}, "ttl"),
        ({"name": "example.com."}, "name"),  # duplicate
        ({"name": "sub.example.com.", "project_id": "p2"}, "name"),  # inside another project's zone
        ({"name": "com.example.", "pool_id": "not-a-uuid"}, "attributes.pool_id"),
    ],
)
def test_bad_zone_input_names_the_field_and_writes_nothing(zone, kwargs, field):
    args = {"project_id": "p1", "name": "fresh.org.", "email": "a@example.org", **kwargs}
    count = Zone.objects.count(), RecordSet.objects.count()
    with pytest.raises(ValidationError) as err:
        writes.create_zone(**args)
    assert field in err.value.message_dict
    assert (Zone.objects.count(), RecordSet.objects.count()) == count


def test_parent_zone_of_another_projects_zone_is_refused(zone):
    with pytest.raises(ValidationError) as err:
        writes.create_zone(project_id="p2", name="com.", email="a@example.org")
    assert "name" in err.value.message_dict


@pytest.mark.parametrize(
    "name,rtype,records,field",
    [
        ("www", "A", ["192.0.2.300"], "records"),
        ("www", "AAAA", ["192.0.2.1"], "records"),
        ("www", "MX", ["mail.example.com."], "records"),
        ("_sip._tcp", "SRV", ["10 60 5060"], "records"),
        ("www", "CAA", ["0 issue"], "records"),
        ("www", "SSHFP", ["1 1 zz"], "records"),
        ("www", "CNAME", ["a.example.org.", "b.example.org."], "records"),
        ("www", "A", [], "records"),
        ("www.example.org.", "A", ["192.0.2.1"], "name"),
        ("a.*.example.com.", "A", ["192.0.2.1"], "name"),
        ("www", "SOA", ["a. b. 1 2 3 4 5"], "type"),
        ("www", "BOGUS", ["x"], "type"),
        ("example.com.", "NS", ["ns9.example.org."], "type"),
        ("example.com.", "CNAME", ["x.example.org."], "type"),
        ("www", "A", ["192.0.2.1"], "ttl"),
    ],
)
def test_bad_recordsets_write_nothing(zone, name, rtype, records, field):
    serial = Zone.objects.get(id=zone.id).serial
    count = RecordSet.objects.count()
    with pytest.raises(ValidationError) as err:
        writes.create_recordset(zone.id, name=name, type=rtype, records=records,
                                  ttl=-5 if field == "ttl" else None)
    assert field in err.value.message_dict
    assert RecordSet.objects.count() == count and Zone.objects.get(id=zone.id).serial == serial


def test_valid_rdata_of_every_supported_type_is_canonicalised(zone):
    cases = {
        ("www", "A"): ["192.0.2.1"],
        ("www", "AAAA"): ["2001:DB8::1"],
        ("mail", "MX"): ["10 mx1"],
        ("txt", "TXT"): ['"hello world"'],
        ("_sip._tcp", "SRV"): ["10 60 5060 sip.example.com."],
        ("caa", "CAA"): ['0 issue "letsencrypt.org"'],
        ("sub", "NS"): ["ns.elsewhere.org."],
        ("1", "PTR"): ["host.example.com."],
        ("ssh", "SSHFP"): ["1 1 dd465c09cfa51fb45020cc83316fff21b9ec74ac"],
        ("alias", "CNAME"): ["www"],
    }
    for (name, rtype), records in cases.items():
        writes.create_recordset(zone.id, name=name, type=rtype, records=records)
    assert RecordSet.objects.get(zone=zone, type="AAAA").records == ["2001:db8::1"]
    assert RecordSet.objects.get(zone=zone, type="MX").records == ["10 mx1.example.com."]
    assert RecordSet.objects.get(zone=zone, type="CNAME").records == ["www.example.com."]


def test_cname_must_be_alone(zone):
    writes.create_recordset(zone.id, name="www", type="A", records=["192.0.2.1"])
    with pytest.raises(ValidationError):
        writes.create_recordset(zone.id, name="www", type="CNAME", records=["x.example.org."])
    writes.create_recordset(zone.id, name="alias", type="CNAME", records=["x.example.org."])
    with pytest.raises(ValidationError):
        writes.create_recordset(zone.id, name="alias", type="TXT", records=['"x"'])


def test_managed_recordsets_are_immutable(zone):
    soa = zone.recordsets.get(type="SOA")
    with pytest.raises(ValidationError):
        writes.delete_recordset(zone.id, soa.id)
    with pytest.raises(ValidationError):
        writes.update_recordset(zone.id, soa.id, records=["a. b. 1 2 3 4 5"])


def test_changes_to_a_zone_being_deleted_are_refused(zone):
    writes.delete_zone(zone.id)
    with pytest.raises(ValidationError):
        writes.create_recordset(zone.id, name="www", type="A", records=["192.0.2.1"])
    with pytest.raises(ValidationError):
        writes.update_zone(zone.id, ttl=60)


def test_pool_with_unknown_backend_type_is_refused(db):
    with pytest.raises(ValidationError) as err:
        pools.save_pool(None, name="p", targets=[{"name": "t", "type": "nope", "masters": ["127.0.0.1:5354"]}])
    assert "targets[0].type" in err.value.message_dict


@pytest.mark.django_db
def test_status_rows_keep_the_newest_result(zone):
    from zones.models import NameserverStatus, TargetStatus

    pools.save_pool(zone.pool, name="default", targets=[{"name": "t1", "type": "bind9", "options": {"rndc_key_secret": "c2VjcmV0"},
                                                "masters": ["127.0.0.1:5354"]}],
                       nameservers=[{"host": "127.0.0.1", "port": 5300}])
    target, ns = zone.pool.targets.get(), zone.pool.nameservers.get()
    pipeline.record_target_result(zone.id, target.id, "UPDATE", zone.serial, True)
    pipeline.record_target_result(zone.id, target.id, "CREATE", zone.serial - 1, False, "late")  # dropped
    pipeline.record_nameserver_result(zone.id, ns.id, zone.serial, zone.serial, True)
    pipeline.record_nameserver_result(zone.id, ns.id, zone.serial - 1, None, False, "late")  # dropped
    assert TargetStatus.objects.values_list("serial", "ok", "message").get() == (zone.serial, True, "")
    assert NameserverStatus.objects.values_list("serial", "ok").get() == (zone.serial, True)
    pipeline.record_target_result(zone.id, target.id, "UPDATE", zone.serial + 1, False, "refused")
    assert TargetStatus.objects.values_list("serial", "ok", "message").get() == (zone.serial + 1, False, "refused")


def test_a_zone_ref_travels_in_celery_messages_as_the_json_it_always_was(zone):
    import json

    [ref] = pipeline.claim_changes(10)
    message = json.loads(json.dumps([pipeline.refs_to_json([ref]), pipeline.Mode.TARGET_SYNC]))
    assert message == [[{"id": str(zone.id), "name": zone.name, "action": "CREATE", "serial": zone.serial,
                         "pool": str(zone.pool_id)}], "target_sync"]
    assert pipeline.refs_from_json(message[0]) == [ref] and pipeline.Mode(message[1]) is pipeline.Mode.TARGET_SYNC
    with pytest.raises(AttributeError):
        ref.serial += 1  # frozen: a stage never changes the work it was given


def test_pool_work_is_kept_until_the_pool_or_a_key_changes(pool, django_assert_num_queries):
    from zones.models import TsigKey

    pools.save_pool(pool, name=pool.name, targets=[{"name": "b1", "type": "bind9", "options": {
        "host": "127.0.0.1", "port": 953, "rndc_key_secret": "c2VjcmV0"}, "masters": ["127.0.0.1:5354"]}])
    first = pipeline.pool_work(pool.id)
    with django_assert_num_queries(1):  # the version only
        assert pipeline.pool_work(pool.id) == first
    pools.save_pool(pool, name=pool.name, threshold_percentage=50)
    assert pipeline.pool_work(pool.id)["threshold"] == 50
    key = TsigKey.objects.create(name="k.", algorithm="hmac-sha256", secret="c2VjcmV0")
    pools.save_pool(pool, name=pool.name, tsig_key="k.")
    assert pipeline.pool_work(pool.id)["targets"][0]["options"]["tsig_key"]["secret"] == "c2VjcmV0"
    key.secret = "bmV3"
    key.save()
    assert pipeline.pool_work(pool.id)["targets"][0]["options"]["tsig_key"]["secret"] == "bmV3"
