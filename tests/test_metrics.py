"""GET /metrics: the web shows what the worker and MiniDNS processes counted (multiprocess mode),
after real work: zones created through gunicorn, pushed by a Celery worker to two real BIND9s that
transfer them from MiniDNS. Plus the database's gauges, the token setting and the wire parsing."""
import os
import re
import uuid
from datetime import timedelta

import dns.message
import dns.query
import dns.rcode
import pytest
import requests
from django.db.models import F
from django.utils import timezone
from prometheus_client import REGISTRY

from dnsctl import metrics
from tests.conftest import needs_named, wait_until
from tests.processes import RedisServer, celery_worker, minidns, web
from tests.servers import free_port
from tests.servers.bind9 import Bind9Server
from zones import accounts
from zones.models import OutboxEvent, PeriodicRun, Zone
from zones.services import pools, writes

ZONES = 6


def sample(text: str, name: str, **labels) -> float:
    """The value of one sample of the exposition text (0 if absent)."""
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0])) if "{" in line else {}
            if all(found.get(k) == v for k, v in labels.items()) and (labels or "{" not in line):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture
def deployment(system_env, tmp_path):
    """gunicorn, a worker and MiniDNS sharing one PROMETHEUS_MULTIPROC_DIR, on a private Redis, and
    two BIND9s as the default pool."""
    redis_server = RedisServer().start()
    env = {**system_env, "REDIS_URL": redis_server.url, "COORDINATION_URL": redis_server.url,
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    host, mport, wport = "127.0.0.1", free_port(), free_port(udp_too=False)
    started = []
    try:
        started.append(minidns(env, host, mport))
        started += [Bind9Server(primary=(host, mport)).start() for _ in range(2)]
        started.append(celery_worker(env))
        started.append(web(env, wport))
        binds = started[1:3]
        pools.save_pool(
            None, name="default", ns_records=[{"hostname": "ns1.example.net.", "priority": 1}],
            targets=[{"name": f"bind-{i}", "type": "bind9", "options": b.backend_options,
                      "masters": [f"{host}:{mport}"]} for i, b in enumerate(binds)],
            nameservers=[{"host": b.host, "port": b.port} for b in binds])
        yield {"url": f"http://{host}:{wport}", "minidns": (host, mport), "dir": str(tmp_path)}
    finally:
        for process in reversed(started):
            process.stop()
        redis_server.stop()


@needs_named
@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_worker_and_minidns_counters_show_on_the_web_after_real_work(deployment):
    token = accounts.issue_token(accounts.api_user("alice", "p1"))
    api = requests.Session()
    api.headers["X-Auth-Token"] = token
    ids = []
    for _ in range(ZONES):
        response = api.post(deployment["url"] + "/v2/zones",
                            json={"name": f"m{uuid.uuid4().hex[:8]}.example.com.", "email": "a@example.com"})
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    wait_until(lambda: Zone.objects.filter(id__in=ids, status="ACTIVE").count() == ZONES, timeout=60,
               message="every zone ACTIVE")
    host, port = deployment["minidns"]
    dns.query.udp(dns.message.make_query("nowhere.invalid.", "SOA"), host, port=port, timeout=2)  # refused

    text = requests.get(deployment["url"] + "/metrics", timeout=10).text
    files = os.listdir(deployment["dir"])
    assert len({name.split("_", 1)[1] for name in files}) >= 3, files  # web, worker and MiniDNS wrote theirs
    for target in ("bind-0", "bind-1"):  # the worker's
        assert sample(text, "dnsctl_target_actions_total", pool="default", target=target, outcome="ok") == ZONES
    assert sample(text, "dnsctl_nameserver_polls_total", outcome="ok") >= ZONES
    assert sample(text, "dnsctl_change_seconds_count", action="CREATE", outcome="ok") == ZONES
    assert sample(text, "dnsctl_change_seconds_bucket", action="CREATE", outcome="ok", le="+Inf") == ZONES
    # MiniDNS's: both BIND9s transferred every zone, and the polls' SOA queries went to them, not MiniDNS
    assert sample(text, "dnsctl_minidns_transfers_total", type="AXFR") >= 2 * ZONES
    assert sample(text, "dnsctl_minidns_queries_total", qtype="AXFR", rcode="NOERROR") >= 2 * ZONES
    assert sample(text, "dnsctl_minidns_refused_total", qtype="SOA") >= 1
    assert sample(text, "dnsctl_minidns_render_seconds_count") >= ZONES
    # the database's, read by the web at scrape time
    assert sample(text, "dnsctl_metrics_database_up") == 1
    assert sample(text, "dnsctl_zones", pool="default", status="ACTIVE", action="NONE") == ZONES


@pytest.mark.django_db(transaction=True)  # the collector reads on a connection of its own
def test_database_gauges(client, settings, monkeypatch):
    monkeypatch.setattr(writes, "_enqueue", lambda zone: None)  # nothing sent to the session's worker
    pool = pools.save_pool(None, name="default", ns_records=[{"hostname": "ns1.example.net.", "priority": 1}])
    writes.create_zone(project_id="p1", name="a.example.com.", email="a@example.com")
    writes.create_zone(project_id="p1", name="b.example.com.", email="a@example.com")
    # PENDING for 100 s, its change marked as handed over: a zone_action still queued from another test
    # (claim_changes takes every PENDING zone whose serial was not pushed) leaves it alone.
    Zone.objects.filter(name="a.example.com.").update(status="PENDING", serial=F("serial") + 1,
                                                      pushed_serial=F("serial") + 1,
                                                      updated_at=timezone.now() - timedelta(seconds=100))
    PeriodicRun.objects.create(name="recovery", runs=3, started_at=timezone.now())
    settings.METRICS = {**settings.METRICS, "DB_CACHE_SECONDS": 0}
    text = client.get("/metrics").content.decode()
    assert sample(text, "dnsctl_zones", pool=pool.name, status="PENDING", action="CREATE") >= 1
    assert sum(sample(text, "dnsctl_zones", pool=pool.name, status=status, action="CREATE")
               for status in ("PENDING", "ERROR")) == 2  # b: PENDING, or ERROR if that worker took it
    assert 100 <= sample(text, "dnsctl_oldest_pending_seconds", pool="default") < 200
    assert sample(text, "dnsctl_periodic_last_run_timestamp_seconds", sweep="recovery") > 0
    assert sample(text, "dnsctl_outbox_backlog") == OutboxEvent.objects.filter(seq__isnull=True).count() == 2
    assert sample(text, "dnsctl_outbox_lag_seconds") >= 0
    assert sample(text, "dnsctl_exists_sweep_shards", state="pending") == 4096


@pytest.mark.django_db
def test_a_metrics_token_is_required_when_set(client, settings):
    settings.METRICS = {**settings.METRICS, "TOKEN": "s3cret-metrics"}
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-metrics")
    assert response.status_code == 200 and b"dnsctl_metrics_database_up" in response.content
    settings.METRICS = {**settings.METRICS, "TOKEN": ""}
    assert client.get("/metrics").status_code == 200


@pytest.mark.parametrize("query, expected", [
    (dns.message.make_query("example.com.", "SOA"), ("SOA", False)),
    (dns.message.make_query(".", "SOA"), ("SOA", True)),
    (dns.message.make_query("example.com.", "AXFR"), ("AXFR", False)),
    (dns.message.make_query("example.com.", "IXFR"), ("IXFR", False)),
    (dns.message.make_query("example.com.", "TXT"), ("other", False)),
])
def test_question_read_from_the_wire(query, expected):
    assert metrics._question(query.to_wire()) == expected


@pytest.mark.parametrize("wire", [b"", b"\x00" * 11, b"\x00" * 12 + b"\x05abc", b"\x00" * 12 + b"\xc0\x0c"])
def test_garbage_is_other(wire):
    assert metrics._question(wire) == ("other", False)


def test_observe_counts_refusals_and_transfers():
    query = dns.message.make_query("example.com.", "AXFR")

    def refuse(wire, peer, tcp):
        response = dns.message.make_response(dns.message.from_wire(wire))
        response.set_rcode(dns.rcode.REFUSED)
        return [response.to_wire()]

    def refused():
        return REGISTRY.get_sample_value("dnsctl_minidns_refused_total", {"qtype": "AXFR"}) or 0

    before = refused()
    assert metrics.observe_minidns(refuse, query.to_wire(), ("192.0.2.1", 53), True)
    assert refused() == before + 1
    assert metrics.observe_minidns(lambda *a: [], query.to_wire(), ("192.0.2.1", 53), True) == []
