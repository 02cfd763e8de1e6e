"""Zone import and export through the API (Designate's /v2/zones/tasks/...): shapes, the checks a
file goes through (each error naming its line, nothing written), quotas, dry-run tasks, isolation,
and the purge of finished tasks.

Plain `django_db`: on_commit never runs, so the tests run the Celery task's work themselves
(zones.imports.run_import / run_export); tests/test_zone_imports_integration.py uses a real worker.
"""
import pytest

from tests.test_api import admin, alice, bob, pool  # noqa: F401 - fixtures
from tests.test_api import create_recordset, create_zone
from zones import imports, journal, quotas
from zones.models import OutboxEvent, RecordSet, Zone, ZoneChange, ZoneExport, ZoneImport

pytestmark = pytest.mark.django_db

IMPORT_KEYS = {"id", "status", "message", "zone_id", "project_id", "version", "created_at", "updated_at", "links"}
EXPORT_KEYS = IMPORT_KEYS | {"location"}

GOOD = """$ORIGIN imported.example.
$TTL 3600
; a comment
@       IN SOA  ns.elsewhere.example. hostmaster.imported.example. (
                2024010101 7200 900 1209600 300 )
@       IN NS   ns.elsewhere.example.
@       IN MX   10 mail
www     300 IN A 192.0.2.1
www     300 IN A 192.0.2.2
mail    IN A    192.0.2.3
alias   IN CNAME www
@       IN TXT  "v=spf1 mx -all"
sub     IN NS   ns1.sub
ns1.sub IN A    192.0.2.53
_sip._tcp IN SRV 10 60 5060 sip
sip     IN AAAA 2001:db8::1
"""


def post_file(client, text, query="", **headers):
    return client.generic("POST", f"/v2/zones/tasks/imports{query}", text.encode(), content_type="text/dns",
                          **headers)


def snapshot():
    return {m.__name__: m.objects.count() for m in (Zone, RecordSet, ZoneChange, OutboxEvent)}


def imported(client, text):
    response = post_file(client, text)
    assert response.status_code == 202, response.content
    body = response.json()
    assert set(body) == IMPORT_KEYS and body["status"] == "PENDING" and body["zone_id"] is None
    imports.run_import(body["id"])
    return client.get(f"/v2/zones/tasks/imports/{body['id']}").json()


def test_import_creates_the_zone_with_its_recordsets_in_one_change(alice):
    task = imported(alice, GOOD)
    assert task["status"] == "COMPLETE", task
    assert task["message"] == "imported.example. imported: 9 recordsets, 10 records"
    assert task["links"]["href"].endswith(f"/v2/zones/{task['zone_id']}")
    zone = Zone.objects.get(id=task["zone_id"])
    assert (zone.name, zone.email, zone.ttl, zone.project_id) == ("imported.example.", "hostmaster@imported.example",
                                                                   3600, "p1")
    assert (zone.status, zone.action, zone.recordset_count, zone.record_count) == ("PENDING", "CREATE", 9, 10)
    rrsets = {(rs.name, rs.type): (rs.ttl, rs.records, rs.managed) for rs in zone.recordsets.all()}
    assert rrsets[("www.imported.example.", "A")] == (300, ["192.0.2.1", "192.0.2.2"], False)
    assert rrsets[("imported.example.", "MX")] == (3600, ["10 mail.imported.example."], False)
    assert rrsets[("sub.imported.example.", "NS")] == (3600, ["ns1.sub.imported.example."], False)
    # The file's SOA and apex NS are not imported: the zone's are dnsctl's, from its pool.
    assert rrsets[("imported.example.", "NS")] == (None, ["ns1.example.net."], True)
    soa = rrsets[("imported.example.", "SOA")][1][0]
    assert soa.startswith("ns1.example.net. hostmaster.imported.example. ") and "2024010101" not in soa
    # One change (the zone's creation, listing every recordset) and one outbox event, like a zone create.
    change = ZoneChange.objects.get(zone_id=zone.id)
    assert change.action == journal.ZONE_CREATE and change.actor_name == "alice" and change.serial == zone.serial
    assert len(change.added) == 11 and ["www.imported.example.", "A", 300, ["192.0.2.1", "192.0.2.2"]] in change.added
    assert list(OutboxEvent.objects.filter(zone_id=zone.id).values_list("type", flat=True)) == ["dns.zone.create"]
    # The counters are right: the API sees the recordsets, and the quotas count them.
    listed = alice.get(f"/v2/zones/{zone.id}/recordsets?limit=100").json()
    assert listed["metadata"]["total_count"] == 11
    assert ZoneImport.objects.get(id=task["id"]).zonefile == ""  # the file is not kept once imported


def test_a_zone_file_with_absolute_names_and_no_origin_imports_too(alice):
    text = ("abs.example. 600 IN SOA ns.x.example. admin.abs.example. 1 2 3 4 5\n"
            "www.abs.example. 600 IN A 192.0.2.1\n")
    task = imported(alice, text)
    assert task["status"] == "COMPLETE", task
    assert Zone.objects.get(id=task["zone_id"]).ttl == 600


@pytest.mark.parametrize("line, text, words", [
    (8, "www 300 IN A 192.0.2.300\n", "192.0.2.300"),
    (8, "bad..name IN A 192.0.2.1\n", ""),
    (8, "www IN RRSIG A 8 2 3600 20300101000000 20200101000000 1 imported.example. AAAA\n", "RRSIG"),
    (8, "elsewhere.example. IN A 192.0.2.1\n", "not inside the zone"),
    (8, "@ IN CNAME mail\n", "CNAME cannot be at the zone apex"),
    (9, "www IN CNAME mail\nwww IN A 192.0.2.1\n", "CNAME must be the only recordset"),
    (8, "* IN NS ns1.example.net.\n", "wildcard"),
    (8, "@ IN DS 1 8 2 " + "AB" * 32 + "\n", "DS"),
    (8, "mx2 IN MX 10 under_score\n", "host name"),
    (8, "bücher IN A 192.0.2.1\n", "xn--bcher-kva"),
    (8, "$INCLUDE /etc/passwd\n", "$INCLUDE"),
    (8, "www 0 IN A 192.0.2.9\n", "TTL"),
    (8, "caa IN CAA 0 issue \"\"\n", "CAA"),
    (4, None, "email"),
])
def test_a_bad_line_is_an_error_naming_it_and_nothing_is_written(alice, line, text, words):
    base = "\n".join(GOOD.splitlines()[:7]) + "\n"  # up to the MX: line 8 is next
    if text is None:
        body = GOOD.replace("hostmaster.imported.example.", "host\\@master.imported.example.")
    else:
        body = base + text
    before = snapshot()
    task = imported(alice, body)
    assert task["status"] == "ERROR" and task["zone_id"] is None, task
    assert task["message"].startswith(f"line {line}: "), task["message"]
    assert words in task["message"]
    assert snapshot() == before


def test_errors_are_all_listed_with_their_lines(alice):
    body = GOOD + "a IN A 1.2.3\nb IN AAAA 2001:db8::1::2\n"
    task = imported(alice, body)
    assert task["status"] == "ERROR"
    assert "line 17" in task["message"] or "line 18" in task["message"]


def test_an_existing_zone_name_is_an_error_naming_the_soa_line(alice):
    create_zone(alice, "imported.example.")
    before = snapshot()
    task = imported(alice, GOOD)
    assert task["status"] == "ERROR" and task["message"].startswith("line 4: "), task
    assert "already exists" in task["message"]
    assert snapshot() == before


def test_no_soa_is_an_error(alice):
    task = imported(alice, "$ORIGIN x.example.\nwww 300 IN A 192.0.2.1\n")
    assert task["status"] == "ERROR" and "no SOA" in task["message"]


@pytest.mark.parametrize("resource, limit", [("zone_records", 9), ("zone_recordsets", 8), ("recordset_records", 1),
                                             ("zones", 0)])
def test_an_import_over_a_quota_is_refused(alice, resource, limit):
    quotas.set_quotas("p1", {resource: limit})
    before = snapshot()
    task = imported(alice, GOOD)
    assert task["status"] == "ERROR", task
    assert f"Quota exceeded for {resource}" in task["message"]
    assert snapshot() == before


def test_a_generate_line_cannot_make_more_records_than_the_quota(alice):
    quotas.set_quotas("p1", {"zone_records": 1000})
    body = GOOD + "$GENERATE 1-4000000000 host$ A 192.0.2.1\n"
    task = imported(alice, body)
    assert task["status"] == "ERROR" and "zone_records" in task["message"]


def dry_run(client, text, query="?dry_run=true"):
    """A dry run's task, run as the worker would, as GET shows it once it ended."""
    response = post_file(client, text, query)
    assert response.status_code == 202, response.content
    body = response.json()
    assert set(body) == IMPORT_KEYS | {"dry_run", "plan"} and body["status"] == "PENDING", body
    assert body["dry_run"] is True and body["plan"] is None
    assert imports.run_import(body["id"]) in ("planned", "invalid")
    return client.get(f"/v2/zones/tasks/imports/{body['id']}").json()


def test_a_dry_run_is_a_task_ending_with_the_plan_and_writes_nothing(alice):
    before = snapshot()
    task = dry_run(alice, GOOD)
    assert task["status"] == "COMPLETE" and task["zone_id"] is None, task
    assert task["message"] == "dry run: imported.example. would be imported: 9 recordsets, 10 records"
    plan = task["plan"]
    assert plan["valid"] and plan["errors"] == [] and (plan["recordsets"], plan["records"]) == (9, 10)
    assert plan["zone"] == {"name": "imported.example.", "email": "hostmaster@imported.example", "ttl": 3600}
    assert any("SOA" in line for line in plan["ignored"]) and any("NS ns.elsewhere" in i for i in plan["ignored"])
    assert plan["more_ignored"] == 0 and "href" not in task["links"]
    assert ZoneImport.objects.get(id=task["id"]).zonefile == ""  # the file is not kept once checked
    bad = dry_run(alice, GOOD + "x IN A 999.1.1.1\ny IN TXT\n", "?dry_run=1")
    assert bad["status"] == "ERROR" and bad["message"].startswith("line 17: "), bad
    assert not bad["plan"]["valid"] and [e["line"] for e in bad["plan"]["errors"]] == [17]
    assert snapshot() == before
    create_zone(alice, "imported.example.")
    before = snapshot()
    taken = dry_run(alice, GOOD)
    assert taken["status"] == "ERROR" and taken["message"].startswith("line 4: ")
    assert "already exists" in taken["message"]
    assert taken["plan"]["errors"][0]["field"] == "name" and taken["plan"]["errors"][0]["line"] == 4
    assert snapshot() == before
    # The tasks list like any import; a normal import's shape is Designate's, without the dry-run keys.
    listed = alice.get("/v2/zones/tasks/imports").json()["imports"]
    assert [t.get("dry_run") for t in listed] == [True, True, True]


def test_a_dry_run_over_a_quota_names_it(alice):
    quotas.set_quotas("p1", {"zone_records": 9})
    before = snapshot()
    task = dry_run(alice, GOOD)
    assert task["status"] == "ERROR" and "Quota exceeded for zone_records" in task["message"], task
    assert task["plan"]["records"] == 10 and not task["plan"]["valid"]
    assert snapshot() == before


def test_dry_run_takes_only_true_or_false(alice):
    response = post_file(alice, GOOD, "?dry_run=maybe")
    assert response.status_code == 400 and "dry_run" in response.json()["errors"]
    assert not ZoneImport.objects.exists()


def test_designateclients_json_form_with_a_pool(alice, admin):
    other = admin.post("/v2/pools", {"name": "other", "allowed_projects": ["p1"],
                                     "ns_records": [{"hostname": "ns9.example.net.", "priority": 1}]},
                       format="json").json()
    response = alice.post("/v2/zones/tasks/imports", {"zonefile": GOOD, "attributes": {"pool_id": other["id"]}},
                          format="json")
    assert response.status_code == 202, response.content
    imports.run_import(response.json()["id"])
    zone = Zone.objects.get(name="imported.example.")
    assert str(zone.pool_id) == other["id"]
    bad = alice.post("/v2/zones/tasks/imports", {"zonefile": GOOD, "attributes": {"colour": "red"}}, format="json")
    assert bad.status_code == 400 and "attributes.colour" in bad.json()["errors"]


@pytest.mark.parametrize("body, content_type, status", [
    (b"", "text/dns", 400), (b"   \n", "text/dns", 400), (b"\xff\xfe", "text/dns", 400),
    (b"a\x00b", "text/dns", 400), (b"x", "application/xml", 415)])
def test_a_body_that_is_no_zone_file_is_a_400(alice, body, content_type, status):
    response = alice.generic("POST", "/v2/zones/tasks/imports", body, content_type=content_type)
    assert response.status_code == status, response.content
    assert not ZoneImport.objects.exists()


def test_pending_imports_per_project_are_capped(alice, settings):
    settings.DNSCTL = {**settings.DNSCTL, "IMPORT_MAX_PENDING": 2}
    assert post_file(alice, GOOD).status_code == 202
    assert post_file(alice, GOOD, "?dry_run=true").status_code == 202  # a dry run holds its file too
    for query in ("", "?dry_run=true"):
        response = post_file(alice, GOOD, query)
        assert response.status_code == 413 and response.json()["type"] == "over_quota"


def test_imports_list_show_and_delete_per_project(alice, bob, admin):
    task = post_file(alice, GOOD).json()
    listed = alice.get("/v2/zones/tasks/imports").json()
    assert [t["id"] for t in listed["imports"]] == [task["id"]] and listed["metadata"]["total_count"] == 1
    assert alice.get("/v2/zones/tasks/imports?status=pending").json()["imports"][0]["id"] == task["id"]
    assert bob.get("/v2/zones/tasks/imports").json()["imports"] == []
    assert bob.get(f"/v2/zones/tasks/imports/{task['id']}").status_code == 404
    assert bob.delete(f"/v2/zones/tasks/imports/{task['id']}").status_code == 404
    assert admin.get("/v2/zones/tasks/imports").json()["imports"] == []
    everyone = admin.get("/v2/zones/tasks/imports", HTTP_X_AUTH_ALL_PROJECTS="true").json()["imports"]
    assert [t["id"] for t in everyone] == [task["id"]]
    assert alice.delete(f"/v2/zones/tasks/imports/{task['id']}").status_code == 204
    assert imports.run_import(task["id"]) == "not pending"  # a deleted task is not run
    assert not Zone.objects.exists()


def test_a_reader_may_not_import_or_export(pool):
    from tests.test_api import client_for, make_user

    reader = client_for(make_user("rita", "p1", role="reader"))
    assert post_file(reader, GOOD).status_code == 403
    assert post_file(reader, GOOD, "?dry_run=true").status_code == 403
    assert not ZoneImport.objects.exists()


# --- exports -------------------------------------------------------------------------------------


def test_export_round_trips_the_zone(alice):
    zone = create_zone(alice, "exported.example.")
    create_recordset(alice, zone["id"], "www", "A", ["192.0.2.1", "192.0.2.2"], ttl=300)
    create_recordset(alice, zone["id"], "@", "TXT", ['"hello world"'])
    create_recordset(alice, zone["id"], "mail", "MX", ["10 mx1.exported.example."])
    response = alice.post(f"/v2/zones/{zone['id']}/tasks/export")
    assert response.status_code == 202, response.content
    task = response.json()
    assert set(task) == EXPORT_KEYS and task["status"] == "PENDING" and task["location"] is None
    assert alice.get(f"/v2/zones/tasks/exports/{task['id']}/export").status_code == 409
    assert imports.run_export(task["id"]) == "exported"
    shown = alice.get(f"/v2/zones/tasks/exports/{task['id']}").json()
    assert shown["status"] == "COMPLETE" and shown["zone_id"] == zone["id"]
    assert shown["location"] == f"designate://v2/zones/tasks/exports/{task['id']}/export"
    assert shown["links"]["export"].endswith(f"/v2/zones/tasks/exports/{task['id']}/export")
    response = alice.get(f"/v2/zones/tasks/exports/{task['id']}/export", HTTP_ACCEPT="text/dns")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/dns")
    text = response.content.decode()
    assert "$ORIGIN exported.example.\n$TTL 3600\n" in text
    assert "www\t300\tIN\tA\t192.0.2.1\n" in text and '@\tIN\tTXT\t"hello world"\n' in text
    # Imported again (as another zone name, the first still exists): the same records.
    task = imported(alice, text.replace("exported.example.", "again.example."))
    assert task["status"] == "COMPLETE", task
    again = {(rs.name.replace("again.", "exported."), rs.type): sorted(r.replace("again.", "exported.")
                                                                         for r in rs.records)
             for rs in RecordSet.objects.filter(zone_id=task["zone_id"], managed=False)}
    original = {(rs.name, rs.type): sorted(rs.records) for rs in RecordSet.objects.filter(zone_id=zone["id"],
                                                                                        managed=False)}
    assert again == original


def test_an_export_over_api_export_size_is_refused(alice):
    zone = create_zone(alice, "big.example.")
    create_recordset(alice, zone["id"], "www", "A", ["192.0.2.1", "192.0.2.2"])
    quotas.set_quotas("p1", {"api_export_size": 3})  # SOA + NS + 2 A = 4
    response = alice.post(f"/v2/zones/{zone['id']}/tasks/export")
    assert response.status_code == 413 and response.json()["type"] == "over_quota", response.content
    assert "api_export_size" in response.json()["message"]
    assert not ZoneExport.objects.exists()
    quotas.set_quotas("p1", {"api_export_size": 4})
    task = alice.post(f"/v2/zones/{zone['id']}/tasks/export").json()
    create_recordset(alice, zone["id"], "ftp", "A", ["192.0.2.3"])  # grew before the export ran
    imports.run_export(task["id"])
    shown = alice.get(f"/v2/zones/tasks/exports/{task['id']}").json()
    assert shown["status"] == "ERROR" and "api_export_size (limit 4)" in shown["message"]
    assert alice.get(f"/v2/zones/tasks/exports/{task['id']}/export").status_code == 409


def test_exports_are_the_zones_projects(alice, bob, admin):
    zone = create_zone(alice, "mine.example.")
    assert bob.post(f"/v2/zones/{zone['id']}/tasks/export").status_code == 404
    task = alice.post(f"/v2/zones/{zone['id']}/tasks/export").json()
    imports.run_export(task["id"])
    for path in (f"/v2/zones/tasks/exports/{task['id']}", f"/v2/zones/tasks/exports/{task['id']}/export"):
        assert bob.get(path).status_code == 404
        assert "mine.example" not in bob.get(path).content.decode()
    assert bob.get("/v2/zones/tasks/exports").json()["exports"] == []
    assert bob.delete(f"/v2/zones/tasks/exports/{task['id']}").status_code == 404
    seen = admin.get("/v2/zones/tasks/exports", HTTP_X_AUTH_ALL_PROJECTS="true").json()["exports"]
    assert [t["id"] for t in seen] == [task["id"]]
    assert alice.get(f"/v2/zones/tasks/exports?zone_id={zone['id']}").json()["metadata"]["total_count"] == 1
    assert alice.delete(f"/v2/zones/tasks/exports/{task['id']}").status_code == 204
    assert not ZoneExport.objects.exists()


def test_records_with_quotes_and_backslashes_are_stored_as_the_api_stores_them(alice):
    from zones import validation

    txt = r'"quote \" backslash \\ octal \009 end" "two"'
    task = imported(alice, f"esc.example. 300 IN SOA a.example. b.esc.example. 1 2 3 4 5\n"
                           f"t.esc.example. 300 IN TXT {txt}\nU.ESC.EXAMPLE. 300 IN CNAME Target.Example.\n")
    assert task["status"] == "COMPLETE", task
    stored = {rs.name: rs.records for rs in RecordSet.objects.filter(zone_id=task["zone_id"], managed=False)}
    assert stored == {"t.esc.example.": validation.records([txt], "TXT", "esc.example.", "t.esc.example."),
                      "u.esc.example.": ["Target.Example."]}


# --- the purge of finished tasks ------------------------------------------------------------------


def test_the_purge_removes_finished_tasks_older_than_zone_tasks_max_age(alice, settings):
    from datetime import timedelta

    from django.utils import timezone

    from workers import tasks
    from zones.services import sweeps

    zone = create_zone(alice, "kept.example.")
    done, failed = imported(alice, GOOD), imported(alice, GOOD)  # the second: the name exists now
    assert (done["status"], failed["status"]) == ("COMPLETE", "ERROR")
    checked = dry_run(alice, GOOD.replace("imported.example.", "other.example."))
    waiting = post_file(alice, GOOD).json()
    exported = alice.post(f"/v2/zones/{zone['id']}/tasks/export").json()
    imports.run_export(exported["id"])
    recent = alice.post(f"/v2/zones/{zone['id']}/tasks/export").json()
    imports.run_export(recent["id"])
    age = settings.DNSCTL["ZONE_TASKS_MAX_AGE"]
    assert age == 7 * 24 * 3600
    old = timezone.now() - timedelta(seconds=age + 1)
    ZoneImport.objects.update(updated_at=old)  # the PENDING one too: it is never purged
    ZoneExport.objects.filter(id=exported["id"]).update(updated_at=old)

    assert sweeps.purge_zone_tasks(age, batch_size=1, max_batches=2) == 3  # bounded: 2 imports, 1 export
    assert sweeps.purge_zone_tasks(0, batch_size=1) == 0  # 0: kept for ever
    assert tasks.purge(force=True)["zone_tasks_purged"] == 1
    assert {str(i) for i in ZoneImport.objects.values_list("id", flat=True)} == {waiting["id"]}
    assert {str(i) for i in ZoneExport.objects.values_list("id", flat=True)} == {recent["id"]}
    assert Zone.objects.filter(id=done["zone_id"]).exists()  # the imported zone stays
