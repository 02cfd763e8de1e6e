"""The real `openstack` CLI (python-openstackclient + the designateclient plugin) against the API over
HTTP, as the README tells operators to call it: `--os-auth-type admin_token --os-endpoint URL/v2
--os-token KEY` (`token_endpoint` is gone from current clients). The commands run in one process
(tests/openstack_shell.py) through the script's entry point."""
import json

import pytest

from zones import accounts
from zones.models import RecordSet, Zone
from zones.services import pools, writes

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def openstack(live_server, monkeypatch, openstack_shell):
    monkeypatch.setattr(writes, "_enqueue", lambda zone: None)  # no worker runs here
    pools.save_pool(None, name="default", ns_records=[{"hostname": "ns1.example.net.", "priority": 1}])
    key = accounts.issue_token(accounts.api_user("alice", "p1"))

    def run(*args, parse=True):
        result = openstack_shell.run("--os-auth-type", "admin_token", "--os-endpoint", live_server.url + "/v2",
                                     "--os-token", key, *args, *(["-f", "json"] if parse else []))
        assert result.returncode == 0, f"openstack {' '.join(args)}: {result.stderr}"
        return json.loads(result.stdout) if parse else result.stdout

    return run


def test_zone_and_recordset_commands(openstack):
    zone = openstack("zone", "create", "--email", "hostmaster@example.com", "--ttl", "600",
                     "--description", "made by the CLI", "example.com.")
    assert (zone["name"], zone["email"], zone["ttl"], zone["status"], zone["action"], zone["type"]) == (
        "example.com.", "hostmaster@example.com", 600, "PENDING", "CREATE", "PRIMARY")
    assert Zone.objects.get(id=zone["id"]).description == "made by the CLI"
    listed = openstack("zone", "list")
    assert [(z["id"], z["name"], z["status"]) for z in listed] == [(zone["id"], "example.com.", "PENDING")]
    shown = openstack("zone", "show", "example.com.")  # by name: the plugin looks the id up
    assert (shown["id"], shown["serial"], shown["description"]) == (zone["id"], zone["serial"], "made by the CLI")

    rs = openstack("recordset", "create", "--type", "A", "--record", "192.0.2.1", "--record", "192.0.2.2",
                   "--ttl", "120", "example.com.", "www")
    assert (rs["name"], rs["type"], rs["ttl"], rs["action"]) == ("www.example.com.", "A", 120, "CREATE")
    assert sorted(rs["records"].split("\n")) == ["192.0.2.1", "192.0.2.2"]
    listed = openstack("recordset", "list", "example.com.")
    assert sorted((r["name"], r["type"]) for r in listed) == [
        ("example.com.", "NS"), ("example.com.", "SOA"), ("www.example.com.", "A")]
    changed = openstack("recordset", "set", "--record", "192.0.2.9", "--ttl", "300", "example.com.",
                        "www.example.com.")
    assert (changed["id"], changed["records"], changed["ttl"], changed["action"]) == (rs["id"], "192.0.2.9", 300,
                                                                                     "UPDATE")
    assert RecordSet.objects.get(id=rs["id"]).records == ["192.0.2.9"]
    table = openstack("recordset", "list", "example.com.", "--type", "A", parse=False)  # the default table output
    assert "www.example.com." in table and "192.0.2.9" in table and rs["id"] in table

    gone = openstack("recordset", "delete", "example.com.", rs["id"])
    assert (gone["id"], gone["action"]) == (rs["id"], "DELETE")
    assert not RecordSet.objects.filter(id=rs["id"]).exists()
    deleted = openstack("zone", "delete", "example.com.")
    assert (deleted["id"], deleted["action"], deleted["status"]) == (zone["id"], "DELETE", "PENDING")
    assert Zone.objects.get(id=zone["id"]).action == "DELETE"


def test_a_wrong_token_is_refused(openstack, live_server, openstack_shell):
    result = openstack_shell.run("--os-auth-type", "admin_token", "--os-endpoint", live_server.url + "/v2",
                                 "--os-token", "not-a-token", "zone", "list")
    assert result.returncode == 1
    assert result.stderr.strip() == "Invalid token."  # the API's 401 message, as the CLI prints it
