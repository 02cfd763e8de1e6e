"""Import and export end to end on real parts: the API, PostgreSQL, Redis, a Celery worker, MiniDNS and
two BIND9s. An imported zone is served by both BIND9s with every record of the file, and its export
holds the same records; a dry run, in the worker too, writes nothing but its task's plan."""
import dns.query
import dns.rdatatype
import dns.zone
import pytest

from tests.conftest import needs_named, wait_until
from tests.test_integration import api, pool_factory, wait_status  # noqa: F401 - fixtures
from zones.models import OutboxEvent, RecordSet, Zone, ZoneChange, ZoneImport

pytestmark = [needs_named, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ORIGIN = "bulk-import.example."


def zone_file(count: int) -> str:
    lines = [f"$ORIGIN {ORIGIN}", "$TTL 3600",
             f"@ IN SOA ns.old-provider.example. hostmaster.{ORIGIN} 7 3600 600 86400 300",
             "@ IN NS ns.old-provider.example.", '@ IN TXT "v=spf1 -all"', "@ 600 IN MX 10 mail"]
    for i in range(count):
        lines.append(f"h{i} IN A 10.0.{i >> 8}.{i & 255}" if i % 3 else f"h{i} 300 IN AAAA 2001:db8::{i:x}")
    lines.append("mail IN A 192.0.2.25")
    return "\n".join(lines) + "\n"


def records(zone: dns.zone.Zone) -> set:
    """(owner, type, ttl, rdata) of every record but the SOA and the apex NS."""
    apex = zone.origin
    return {(name.derelativize(apex).to_text(), dns.rdatatype.to_text(rds.rdtype), rds.ttl, rd.to_text())
            for name, node in zone.nodes.items() for rds in node for rd in rds
            if rds.rdtype != dns.rdatatype.SOA
            and not (rds.rdtype == dns.rdatatype.NS and name.derelativize(apex) == apex)}


def import_task(api, text, query=""):
    response = api.generic("POST", f"/v2/zones/tasks/imports{query}", text.encode(), content_type="text/dns")
    assert response.status_code == 202, response.content
    task_id = response.json()["id"]
    return wait_until(lambda: (t := api.get(f"/v2/zones/tasks/imports/{task_id}").json())["status"] != "PENDING"
                      and t, timeout=60, message="the import to end")


def test_import_reaches_active_on_bind9_and_the_export_round_trips(api, binds, pool_factory):
    pool_factory()
    text = zone_file(2000)
    task = import_task(api, text)
    assert task["status"] == "COMPLETE", task
    zone = wait_status(task["zone_id"], "ACTIVE", "ERROR", timeout=90)
    assert (zone.status, zone.action) == ("ACTIVE", "NONE"), zone.reason
    assert (zone.recordset_count, zone.record_count) == (2003, 2003)
    assert ZoneChange.objects.filter(zone_id=zone.id).count() == 1

    wanted = records(dns.zone.from_text(text, relativize=False))
    for bind in binds:  # what each secondary transferred from MiniDNS: every record of the file
        transfer = dns.query.xfr(bind.host, ORIGIN, port=bind.port, timeout=10, relativize=False)
        served = dns.zone.from_xfr(transfer, relativize=False)
        assert served.get_rdataset(ORIGIN, "SOA")[0].serial == zone.serial
        assert records(served) == wanted
        assert sorted(r.to_text() for r in served.get_rdataset(ORIGIN, "NS")) == ["ns1.example.net."]

    response = api.post(f"/v2/zones/{zone.id}/tasks/export")
    assert response.status_code == 202, response.content
    export_id = response.json()["id"]
    wait_until(lambda: api.get(f"/v2/zones/tasks/exports/{export_id}").json()["status"] == "COMPLETE",
               timeout=30, message="the export")
    exported = api.get(f"/v2/zones/tasks/exports/{export_id}/export", HTTP_ACCEPT="text/dns").content.decode()
    assert records(dns.zone.from_text(exported, relativize=False)) == wanted


def test_a_bad_line_ends_the_import_in_error_with_nothing_written(api, pool_factory):
    pool_factory()
    text = zone_file(50).replace("h17 IN A 10.0.0.17", "h17 IN A 10.0.0.1700")
    task = import_task(api, text)
    assert task["status"] == "ERROR" and task["zone_id"] is None
    assert task["message"].startswith("line 24: ") and "10.0.0.1700" in task["message"], task["message"]
    assert not Zone.objects.filter(name=ORIGIN).exists()
    assert not RecordSet.objects.filter(name__endswith=ORIGIN).exists()


def test_a_dry_run_in_the_worker_answers_the_plan_and_writes_nothing(api, pool_factory):
    pool_factory()
    counts = lambda: {m.__name__: m.objects.count() for m in (Zone, RecordSet, ZoneChange, OutboxEvent)}  # noqa: E731
    before = counts()
    task = import_task(api, zone_file(2000), "?dry_run=true")
    assert task["status"] == "COMPLETE" and task["dry_run"] is True and task["zone_id"] is None, task
    assert (task["plan"]["valid"], task["plan"]["recordsets"], task["plan"]["records"]) == (True, 2003, 2003)
    assert task["plan"]["zone"]["name"] == ORIGIN
    bad = import_task(api, zone_file(50).replace("h17 IN A 10.0.0.17", "h17 IN A 10.0.0.1700"), "?dry_run=true")
    assert bad["status"] == "ERROR" and bad["message"].startswith("line 24: "), bad
    assert [e["line"] for e in bad["plan"]["errors"]] == [24]
    assert counts() == before and not Zone.objects.filter(name=ORIGIN).exists()
    assert set(ZoneImport.objects.values_list("zonefile", flat=True)) == {""}
