"""manage.py configure_pool (one target, nameserver, also-notify or NS record at a time) and
manage.py target_config (what a new server needs), down to a real server of each kind started from
exactly what target_config prints, added by the configure_pool line it prints, serving a zone."""
import os
import shlex
import subprocess
import sys
import uuid

import pytest
from django.core.management import CommandError, call_command

from tests.conftest import needs_named, wait_until
from tests.processes import ROOT, Process
from tests.servers import answers_dns, free_port
from tests.servers.knot import needs_knot
from tests.servers.nsd import needs_nsd
from tests.servers.pdns import needs_pdns
from workers.dnsclient import query_soa_serial
from zones.models import Pool, TsigKey, Zone
from zones.services import pools, writes

# In the test's transaction, rolled back, unless another process must read what the test wrote.
pytestmark = pytest.mark.django_db

SECRET = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I="


def run(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command("configure_pool", *args, stdout=out)
    return out.getvalue()


def state(pool_name="default"):
    """Everything configure_pool can change, to assert that a refused command changed nothing."""
    pool = Pool.objects.filter(name=pool_name).first()
    if pool is None:
        return None
    return (pool.notify_source, pool.threshold_percentage, pool.catalog_zone,
            sorted((t.name, t.type, sorted(t.options.items()), t.masters) for t in pool.targets.all()),
            sorted((n.host, n.port, n.name) for n in pool.nameservers.all()),
            sorted((n.host, n.port) for n in pool.also_notifies.all()),
            sorted((r.hostname, r.priority) for r in pool.ns_records.all()))


@pytest.fixture
def pool():
    run("default", "set", "--notify-source", "127.0.0.1")
    run("default", "set-ns-record", "ns1.example.net.")
    run("default", "set-target", "b1", "--type", "bind9", "--master", "127.0.0.1:5354", "--rndc-port", "9999",
        "--rndc-key-secret", SECRET, "--nameserver", "127.0.0.1:5301", "--no-check")
    return Pool.objects.get(name="default")


def test_one_target_at_a_time_of_any_kind(pool, tmp_path):
    out = run("default", "set-target", "k1", "--type", "knot", "--socket", "/run/knot/knot.sock", "--no-check")
    assert out.strip() == "pool default: target k1 (knot) added without a check of its control channel"
    key = tmp_path / "api-key"
    key.write_text("the-api-key\n")
    run("default", "set-target", "p1", "--type", "pdns", "--api-url", "http://127.0.0.1:8081",
        "--api-key-file", str(key), "--no-check")
    run("default", "set-target", "n1", "--type", "nsd", "--config", "/etc/nsd/nsd.conf", "--no-check")
    targets = {t.name: t for t in pool.targets.all()}
    assert {n: t.type for n, t in targets.items()} == {"b1": "bind9", "k1": "knot", "p1": "pdns", "n1": "nsd"}
    assert targets["p1"].options == {"api_url": "http://127.0.0.1:8081", "api_key": "the-api-key"}
    assert all(t.masters == ["127.0.0.1:5354"] for t in targets.values())  # copied from the pool's other targets
    b1 = (targets["b1"].options, targets["b1"].masters)

    run("default", "set-target", "k1", "--timeout", "20", "--no-check")  # one option; the rest stays
    assert Pool.objects.get().targets.get(name="k1").options == {"socket": "/run/knot/knot.sock", "timeout": 20.0}
    assert out.strip() != run("default", "set-target", "k1", "--template", "t2", "--no-check").strip()
    run("default", "remove-target", "p1")
    targets = {t.name: t for t in pool.targets.all()}
    assert sorted(targets) == ["b1", "k1", "n1"]
    assert (targets["b1"].options, targets["b1"].masters) == b1  # never touched
    shown = run("default", "show")
    assert "rndc_key_secret=*****" in shown and SECRET not in shown


def test_nameservers_also_notifies_and_ns_records_one_at_a_time(pool):
    run("default", "set-nameserver", "127.0.0.1:5302", "--name", "ns2.example.net.")
    run("default", "set-nameserver", "127.0.0.1:5301", "--name", "ns1.example.net.")  # renames, keeps 5302
    run("default", "set-target", "b1", "--timeout", "5", "--nameserver", "127.0.0.1:5302", "--no-check")  # keeps its name
    run("default", "add-also-notify", "192.0.2.9:53")
    run("default", "set-ns-record", "ns2.example.net.", "--priority", "2")
    assert state()[4:] == ([("127.0.0.1", 5301, "ns1.example.net."), ("127.0.0.1", 5302, "ns2.example.net.")],
                           [("192.0.2.9", 53)], [("ns1.example.net.", 1), ("ns2.example.net.", 2)])
    run("default", "remove-nameserver", "127.0.0.1:5301")
    run("default", "remove-also-notify", "192.0.2.9:53")
    run("default", "remove-ns-record", "ns1.example.net.")
    assert state()[4:] == ([("127.0.0.1", 5302, "ns2.example.net.")], [], [("ns2.example.net.", 2)])
    assert [t.name for t in pool.targets.all()] == ["b1"]


@pytest.mark.parametrize("args, says", [
    (["set-target", "x1", "--type", "powerdns", "--no-check"], "target x1: target.type: Unknown backend type 'powerdns'"),
    (["set-target", "x1", "--no-check"], "target x1: option --type is required"),
    (["set-target", "x1", "--type", "knot", "--no-check"], "knot target 'x1': option socket"),
    (["set-target", "x1", "--type", "pdns", "--api-url", "http://127.0.0.1:1", "--no-check"],
     "pdns target 'x1': option api_key is required"),
    (["set-target", "x1", "--type", "nsd", "--config", "relative.conf", "--no-check"], "nsd target 'x1': option config"),
    (["set-target", "x1", "--type", "bind9", "--socket", "/run/knot.sock", "--no-check"],
     "target x1: option --socket is not a bind9 option"),
    (["set-target", "b1", "--rndc-key-secret", "not base64!", "--no-check"], "bind9 target 'b1': rndc_key_secret"),
    (["set-target", "b1", "--rndc-port", "70000", "--no-check"], "bind9 target 'b1': option rndc_port"),
    (["set-target", "b1", "--api-key-file", "/nonexistent", "--no-check"], "target b1: option --api-key-file is not"),
    (["set-target", "x1", "--type", "pdns", "--api-url", "http://127.0.0.1:1", "--api-key-file", "/nonexistent"],
     "target x1: option --api-key-file: cannot read /nonexistent"),
    (["set-target", "b1", "--master", "ns.example.net:5354", "--no-check"], "master 'ns.example.net' is not an IP"),
    (["set-nameserver", "127.0.0.1:0"], "nameserver: Needs a host and a port"),
    (["remove-target", "nope"], "Pool default has no target named nope"),
    (["set-ns-record", "not a name"], "ns_record"),
])
def test_bad_input_names_the_target_and_option_and_saves_nothing(pool, args, says):
    before = state()
    with pytest.raises(CommandError, match="nothing was saved|required|not a|cannot read") as excinfo:
        run("default", *args)
    assert says in str(excinfo.value)
    assert state() == before


def test_a_new_target_in_a_pool_without_masters_needs_master():
    run("other", "set")
    with pytest.raises(CommandError, match=r"target k1: option --master HOST:PORT .* no target to copy them from"):
        run("other", "set-target", "k1", "--type", "knot", "--socket", "/run/knot.sock", "--no-check")
    assert state("other")[3] == []
    with pytest.raises(CommandError, match="no pool named 'nope'"):
        run("nope", "set-target", "k1", "--type", "knot")


def test_nsd_cannot_join_a_catalog_pool(pool):
    run("default", "set", "--catalog-zone", "catalog.example.net.")
    before = state()
    with pytest.raises(CommandError, match="nsd target 'n1': this server cannot consume the pool's catalog zone"):
        run("default", "set-target", "n1", "--type", "nsd", "--config", "/etc/nsd/nsd.conf", "--no-check")
    assert state() == before
    with pytest.raises(CommandError, match="option --type nsd: the pool has a catalog zone"):
        call_command("target_config", "--type", "nsd", "--pool", "default")


@pytest.mark.parametrize("kind, args, option", [
    ("bind9", ["--rndc-port", "{port}", "--rndc-key-secret", SECRET], "options rndc_host, rndc_port"),
    ("knot", ["--socket", "{dir}/knot.sock"], "option socket"),
    ("pdns", ["--api-url", "http://127.0.0.1:{port}", "--api-key", "k"], "option api_url"),
    ("nsd", ["--config", "{dir}/nsd.conf"], "option config"),
])
def test_an_unreachable_control_channel_is_refused(pool, tmp_path, kind, args, option):
    before = state()
    args = [a.format(port=free_port(udp_too=False), dir=tmp_path) for a in args]
    with pytest.raises(CommandError) as excinfo:
        run("default", "set-target", "x1", "--type", kind, "--nameserver", "127.0.0.1:5399", *args)
    assert f"pool default, target x1: {kind} target 'x1'" in str(excinfo.value)
    assert option in str(excinfo.value) and "(nothing was saved)" in str(excinfo.value)
    assert state() == before  # not the target, nor the nameserver given with it


@needs_named
@pytest.mark.django_db(transaction=True)  # manage.py's process reads the pool
def test_exit_status_1_and_the_message_on_stderr(pool, system_env):
    before = state()
    result = subprocess.run([sys.executable, "manage.py", "configure_pool", "default", "set-target", "b1",
                             "--rndc-port", str(free_port(udp_too=False))], cwd=ROOT, env={**os.environ, **system_env},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "pool default, target b1: bind9 target 'b1': rndc status on 127.0.0.1:" in result.stderr
    assert "(options rndc_host, rndc_port, rndc_key_*) failed" in result.stderr and SECRET not in result.stderr
    assert state() == before


def test_target_config_carries_the_pools_primaries_notify_source_key_and_catalog(pool):
    TsigKey.objects.create(name="xfr-key", secret=SECRET)
    run("default", "set", "--tsig-key", "xfr-key", "--catalog-zone", "catalog.example.net.", "--notify-source",
        "192.0.2.53")
    for kind, want in [
        ("bind9", ['primaries { 127.0.0.1 port 5354 key "xfr-key"; }', "allow-notify { 192.0.2.53; }",
                   'catalog-zones { zone "catalog.example.net."', f'secret "{SECRET}"']),
        ("knot", ["address: [ 127.0.0.1@5354 ]\n    key: xfr-key", "address: [ 192.0.2.53 ]",
                  "domain: catalog.example.net.", "catalog-role: interpret"]),
        ("pdns", ["allow-notify-from=127.0.0.1/32,192.0.2.53/32", "trusted-notification-proxy=192.0.2.53",
                  "adds its Consumer zone"]),
    ]:
        from io import StringIO

        out = StringIO()
        call_command("target_config", "--type", kind, "--dir", "/srv/t", "--port", "5300", stdout=out)
        for text in want:
            assert text in out.getvalue(), (kind, text)
    for args, says in [(["--type", "unbound"], "option --type: unknown server type 'unbound'"),
                       (["--type", "knot", "--pool", "nope"], "option --pool: there is no pool named 'nope'"),
                       (["--type", "knot", "--master", "minidns:5354"], "option --master: 'minidns' is not an IP")]:
        with pytest.raises(CommandError, match=says):
            call_command("target_config", *args)


# -- real servers, from exactly what target_config prints --------------------------------------------

def printed(script: str, what: str) -> list[str]:
    """The command on the script's '# what: ...' line, as argv."""
    line = next(line for line in script.splitlines() if line.startswith(f"# {what}:"))
    return shlex.split(line.split(":", 1)[1])


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)  # the worker and MiniDNS read the pool and the zone
@pytest.mark.parametrize("kind", [
    pytest.param("bind9", marks=needs_named), pytest.param("knot", marks=needs_knot),
    pytest.param("pdns", marks=needs_pdns), pytest.param("nsd", marks=needs_nsd)])
def test_a_server_set_up_from_target_config_serves_the_pools_zones(kind, tmp_path, minidns_address, worker,
                                                                  system_env):
    from io import StringIO

    host, port = minidns_address
    pools.save_pool(None, name="default", notify_source=host,
                       ns_records=[{"hostname": "ns1.example.net.", "priority": 1}])
    dns_port = free_port()
    out = StringIO()
    call_command("target_config", "--type", kind, "--dir", str(tmp_path / kind), "--port", str(dns_port),
                 "--control-port", str(free_port(udp_too=False)), "--master", f"{host}:{port}", stdout=out)
    script = out.getvalue()
    prepared = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)
    assert prepared.returncode == 0, prepared.stdout + prepared.stderr
    server = Process(kind, printed(script, "start"), {}).start()
    try:
        check = printed(script, "check")
        server.wait_for(lambda: subprocess.run(check, capture_output=True, timeout=5).returncode == 0
                        and answers_dns("127.0.0.1", dns_port), timeout=20)
        argv = printed(script, "pool")
        assert argv[:3] == ["python", "manage.py", "configure_pool"]
        call_command(*argv[2:])
        assert [(t.name, t.type) for t in Pool.objects.get().targets.all()] == [(f"{kind}-1", kind)]

        name = f"{kind}-{uuid.uuid4().hex[:8]}.example.com."
        zone = writes.create_zone(project_id="p1", name=name, email="admin@example.com")
        zone = wait_until(lambda: (z := Zone.objects.get(id=zone.id)).status != "PENDING" and z, timeout=30)
        assert (zone.status, zone.reason) == ("ACTIVE", "")
        assert query_soa_serial(name, "127.0.0.1", dns_port) == zone.serial
    finally:
        server.stop()


@pytest.mark.integration
@needs_pdns
def test_a_pdns_target_of_a_catalog_pool_gets_the_consumer_zone():
    from tests.servers.pdns import PdnsServer

    run("cat", "set", "--catalog-zone", "catalog.example.net.")
    with PdnsServer() as pdns:
        run("cat", "set-target", "p1", "--type", "pdns", "--master", "127.0.0.1:5354", "--api-url", pdns.api_url,
            f"--api-key={pdns.api_key}", "--nameserver", f"{pdns.host}:{pdns.port}")
        assert pdns.api("zones/catalog.example.net.") == 200
    assert [t.name for t in Pool.objects.get(name="cat").targets.all()] == ["p1"]
