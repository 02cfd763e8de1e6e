"""Zone import and export through python-designateclient (as a library) and the real `openstack zone
import|export` commands, against the API over HTTP (live_server). The tasks run in-process (Celery
eager), so the import's work happens when its request commits; tests/test_zone_imports_integration.py
runs them in a real worker."""
import json

import pytest
from designateclient import exceptions
from designateclient.v2 import client as designate
from keystoneauth1 import session
from keystoneauth1.token_endpoint import Token

import workers.tasks  # noqa: F401 - registers the tasks the eager app runs (the zone push too)
import workers.zone_tasks  # noqa: F401
from tests.test_zone_imports import GOOD
from zones import accounts, quotas
from zones.services import pools
from zones.models import RecordSet, Zone

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def world(live_server, tmp_path):
    from dnsctl.celery import app

    old = app.conf.task_always_eager
    app.conf.task_always_eager = True  # the zone's own push runs too: a pool without targets ends it at once
    pools.save_pool(None, name="default", ns_records=[{"hostname": "ns1.example.net.", "priority": 1}])
    key = accounts.issue_token(accounts.api_user("alice", "p1"))
    yield {"url": live_server.url + "/v2", "key": key}
    app.conf.task_always_eager = old


@pytest.fixture
def dns(world):
    return designate.Client(session=session.Session(auth=Token(world["url"], world["key"])), timeout=30)


def test_import_and_export_through_designateclient(dns):
    task = dns.zone_imports.create(GOOD)
    assert task["status"] in ("PENDING", "COMPLETE") and "links" in task
    shown = dns.zone_imports.get_import_record(task["id"])
    assert shown["status"] == "COMPLETE", shown
    zone_id = shown["zone_id"]
    assert dns.zones.get(zone_id)["name"] == "imported.example."
    assert [t["id"] for t in dns.zone_imports.list()] == [task["id"]]
    assert dns.zone_imports.list(criterion={"status": "ERROR"}) == []

    export = dns.zone_exports.create("imported.example.")  # by name, as the client resolves it
    record = dns.zone_exports.get_export_record(export["id"])
    assert record["status"] == "COMPLETE" and record["zone_id"] == zone_id
    assert record["location"].endswith(f"/{export['id']}/export")
    text = dns.zone_exports.get_export(export["id"])
    assert text.startswith("; imported.example. serial") and "www\t300\tIN\tA\t192.0.2.1" in text
    assert [e["id"] for e in dns.zone_exports.list()] == [export["id"]]

    dns.zone_exports.delete(export["id"])
    dns.zone_imports.delete(task["id"])
    assert dns.zone_exports.list() == [] and dns.zone_imports.list() == []
    with pytest.raises(exceptions.NotFound):
        dns.zone_exports.get_export_record(export["id"])


def test_designateclient_sees_errors(dns):
    bad = dns.zone_imports.create(GOOD + "x IN A 999.0.0.1\n")
    shown = dns.zone_imports.get_import_record(bad["id"])
    assert shown["status"] == "ERROR" and shown["message"].startswith("line 17: ") and shown["zone_id"] is None
    assert not Zone.objects.exists()
    zone = dns.zones.create("small.example.", email="a@small.example")
    quotas.set_quotas("p1", {"api_export_size": 1})
    with pytest.raises(exceptions.OverQuota):
        dns.zone_exports.create(zone["id"])


def test_openstack_zone_import_and_export_commands(world, tmp_path, openstack_shell):
    def openstack(*args, parse=True):
        result = openstack_shell.run("--os-auth-type", "admin_token", "--os-endpoint", world["url"],
                                     "--os-token", world["key"], *args, *(["-f", "json"] if parse else []))
        assert result.returncode == 0, f"openstack {' '.join(args)}: {result.stderr}"
        return json.loads(result.stdout) if parse else result.stdout

    path = tmp_path / "zone.db"
    path.write_text(GOOD)
    task = openstack("zone", "import", "create", str(path))
    shown = openstack("zone", "import", "show", task["id"])
    assert shown["status"] == "COMPLETE" and shown["zone_id"]
    assert [t["id"] for t in openstack("zone", "import", "list")] == [task["id"]]
    assert RecordSet.objects.filter(zone_id=shown["zone_id"], managed=False).count() == 9

    export = openstack("zone", "export", "create", "imported.example.")
    assert openstack("zone", "export", "show", export["id"])["status"] == "COMPLETE"
    assert [e["id"] for e in openstack("zone", "export", "list")] == [export["id"]]
    text = openstack("zone", "export", "showfile", export["id"])["data"]
    assert "$ORIGIN imported.example." in text and "mail\t3600\tIN\tA\t192.0.2.3" in text
    openstack("zone", "export", "delete", export["id"], parse=False)
    openstack("zone", "import", "delete", task["id"], parse=False)
    assert openstack("zone", "export", "list") == [] and openstack("zone", "import", "list") == []
