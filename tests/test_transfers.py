"""What MiniDNS sees of the secondaries' transfers: noted in Redis, shown in the propagation view,
and used by the nameserver polls to wait for a big transfer instead of giving up."""
import time

import pytest
import redis
from django.conf import settings

from dnsctl.celery import app as celery_app
from tests.conftest import needs_named, wait_until
from tests.fakes import make_pool, run
from tests.processes import celery_worker
from workers import dnsclient, tasks
from workers.dnsclient import query_soa_serial
from workers.transfers import Recorder
from zones import accounts, transfers
from zones.services import pools, writes
from zones.models import Zone


@pytest.fixture
def clean_redis():
    conn = redis.Redis.from_url(settings.REDIS_URL)
    for key in conn.scan_iter(transfers.PREFIX + "*"):
        conn.delete(key)
    return conn


def note_transfer(zone_id, peer, serial, end="done", rdtype="AXFR", size=1000):
    """As MiniDNS does: a recorder noting one transfer (ended or not), flushed to Redis."""
    recorder = Recorder(ttl=60)
    transfer = recorder.transfer(str(zone_id), peer, rdtype, serial, None, [b"x" * size])
    if end:
        transfer.finished(size, 1, "" if end == "done" else end)
    recorder.flush()


def test_the_recorder_writes_bounded_lists_with_a_ttl(clean_redis):
    recorder = Recorder(ttl=60, soa_every=10)
    for _ in range(5):
        recorder.soa("z1", "192.0.2.1", 7)  # noted once per 10 s per server and serial
    transfer = recorder.transfer("z1", "192.0.2.1", "IXFR", 8, 7, [b"a", b"bb"])
    assert list(transfer) == [b"a", b"bb"] and transfer[0] == b"a" and len(transfer) == 2
    transfer.finished(3, 2)
    transfer.finished(3, 2)  # once only
    for i in range(100):
        recorder.transfer("z2", f"192.0.2.{i % 3}", "AXFR", 9, None, [])
    recorder.flush()
    assert 0 < clean_redis.ttl(transfers.PREFIX + "z1") <= 60
    assert clean_redis.llen(transfers.PREFIX + "z2") == transfers.MAX_EVENTS
    (ixfr, soa) = transfers.of_zones(["z1"])["z1"]
    assert (ixfr["type"], ixfr["peer"], ixfr["serial"], ixfr["from_serial"]) == ("IXFR", "192.0.2.1", 8, 7)
    assert (ixfr["state"], ixfr["bytes"], ixfr["messages"]) == ("done", 3, 2)
    assert ixfr["ended_at"] >= ixfr["started_at"]
    assert (soa["type"], soa["state"], soa["serial"]) == ("SOA", "asked", 7)


def test_redis_down_costs_nothing_but_the_hint():
    recorder = Recorder(ttl=60, write=lambda events: (_ for _ in ()).throw(ConnectionError("down")), max_pending=3)
    for i in range(5):
        recorder.transfer("z", "192.0.2.1", "AXFR", i, None, [])
    recorder.flush()  # fails: kept, bounded
    assert len(recorder._pending) == 3 and recorder.dropped == 2
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    assert transfers.of_zones(["z"], conn=dead) == {}


# --- the nameserver polls -------------------------------------------------------------------------


@pytest.fixture
def lagging(eager, monkeypatch, settings):
    """The nameservers answer an old serial for their first `behind` polls; polls' waits are recorded."""
    state = {"behind": 0, "polls": 0, "countdowns": []}
    real = dnsclient.query_soa_serial

    def soa(zone_name, host, port, timeout):
        state["polls"] += 1
        serial = real(zone_name, host, port, timeout)
        return serial - 1 if state["polls"] <= state["behind"] and serial else serial

    monkeypatch.setattr(dnsclient, "query_soa_serial", soa)
    retry = tasks.poll_batch.retry

    def recorded_retry(*args, countdown=None, **kwargs):
        state["countdowns"].append(countdown)
        return retry(*args, countdown=countdown, **kwargs)

    monkeypatch.setattr(tasks.poll_batch, "retry", recorded_retry)
    # Eager tasks run a retry at once (no countdown), unless the Retry propagates as an error.
    celery_app.conf.update(task_eager_propagates=False)  # the eager fixture restores it
    monkeypatch.setitem(settings.DNSCTL, "POLL_MAX_RETRIES", 5)
    monkeypatch.setitem(settings.DNSCTL, "POLL_RETRY_INTERVAL", 0.25)
    monkeypatch.setitem(settings.DNSCTL, "POLL_RETRY_MAX_INTERVAL", 2.0)
    return state


@pytest.mark.django_db
def test_polls_back_off_and_give_up_when_no_transfer_is_seen(lagging, clean_redis, django_capture_on_commit_callbacks):
    make_pool(targets=("t1",))
    lagging["behind"] = 100
    zone = run(django_capture_on_commit_callbacks, writes.create_zone, project_id="p", name="a.example.",
               email="a@example.com")
    assert zone.status == "ERROR" and "still serves serial" in zone.reason
    assert lagging["countdowns"] == [0.25, 0.5, 1.0, 2.0, 2.0]  # doubling, capped; 5 retries after the first poll
    assert lagging["polls"] == 6


@pytest.mark.django_db
def test_polls_wait_while_the_nameserver_takes_the_transfer(lagging, clean_redis, monkeypatch,
                                                            django_capture_on_commit_callbacks):
    make_pool(targets=("t1",))
    lagging["behind"] = 12  # more polls than POLL_MAX_RETRIES: a big transfer
    real, recorder, running = tasks._transferring, Recorder(ttl=60), {}

    def transferring(host, refs):  # MiniDNS sees one transfer run until the 11th poll, then end
        for ref in refs:
            if ref.id not in running:
                running[ref.id] = recorder.transfer(ref.id, "192.0.2.53", "AXFR", ref.serial, None, [])
            if lagging["polls"] >= 11:
                running[ref.id].finished(10, 1)
        recorder.flush()
        return real(host, refs)

    monkeypatch.setattr(tasks, "_transferring", transferring)
    zone = run(django_capture_on_commit_callbacks, writes.create_zone, project_id="p", name="big.example.",
               email="a@example.com")
    assert (zone.status, zone.action) == ("ACTIVE", "NONE"), zone.reason
    assert lagging["polls"] == 13
    # while the transfer runs: no poll used, the waits doubling with the batch's polls; after its end: soon
    assert lagging["countdowns"] == [0.25, 0.5, 1.0] + [2.0] * 7 + [0.25, 0.25]


@pytest.mark.django_db
def test_a_transfer_that_never_ends_is_waited_for_only_so_long(lagging, clean_redis, monkeypatch, settings,
                                                               django_capture_on_commit_callbacks):
    make_pool(targets=("t1",))
    lagging["behind"] = 1000
    monkeypatch.setitem(settings.DNSCTL, "POLL_TRANSFER_MAX_WAIT", 0.5)
    real = tasks._transferring

    def transferring(host, refs):
        for ref in refs:
            note_transfer(ref.id, "192.0.2.53", ref.serial, end=None)
        time.sleep(0.05)
        return real(host, refs)

    monkeypatch.setattr(tasks, "_transferring", transferring)
    zone = run(django_capture_on_commit_callbacks, writes.create_zone, project_id="p", name="stuck.example.",
               email="a@example.com")
    assert zone.status == "ERROR"
    assert 6 < lagging["polls"] < 30  # free polls for 0.5 s, then the 5 retries


# --- the propagation view -----------------------------------------------------------------------


@pytest.mark.django_db
def test_operators_see_transfers_with_addresses_tenants_only_their_state(clean_redis, admin_user):
    from rest_framework.test import APIClient

    pool = pools.save_pool(None, name="default", ns_records=[{"hostname": "ns1.example.net."}],
                              nameservers=[{"host": "198.51.100.8", "port": 5300, "name": "ns1.example.net."},
                                           {"host": "198.51.100.9", "port": 5300}])
    zone = writes.create_zone(project_id="p1", name="seen.example.", email="a@example.com", pool_id=pool.id)
    note_transfer(zone.id, "198.51.100.8", zone.serial, size=4321)
    note_transfer(zone.id, "203.0.113.7", zone.serial, end="client stopped reading (no progress in 10 s)")
    tenant = APIClient()
    tenant.credentials(HTTP_X_AUTH_TOKEN=accounts.issue_token(accounts.api_user("alice", "p1")))
    seen = tenant.get(f"/v2/zones/{zone.id}/propagation").json()
    assert "198.51.100" not in str(seen) and "203.0.113" not in str(seen) and "transfers" not in seen
    first, second = seen["nameservers"]
    assert (first["transfer"]["type"], first["transfer"]["state"], first["transfer"]["serial"]) == (
        "AXFR", "done", zone.serial)
    assert second["transfer"] is None and "bytes" not in first["transfer"]

    operator = APIClient()
    operator.credentials(HTTP_X_AUTH_TOKEN=accounts.issue_token(admin_user))
    body = operator.get(f"/v2/zones/{zone.id}/propagation", HTTP_X_AUTH_ALL_PROJECTS="true").json()
    assert body["nameservers"][0]["transfer"]["peer"] == "198.51.100.8"
    assert body["nameservers"][0]["transfer"]["bytes"] == 4321
    assert {(t["peer"], t["state"]) for t in body["transfers"]} == {("198.51.100.8", "done"), ("203.0.113.7", "failed")}
    assert next(t for t in body["transfers"] if t["state"] == "failed")["error"].startswith("client stopped reading")


# --- end to end: a slow transfer to a real BIND9 ----------------------------------------------------


class SlowMiniDNS:
    """Builds a MiniDNS whose transfers start `delay` s late and stream lazily (a big zone's render
    and stream, on a small zone): longer than the polls' blind budget in the tests' settings."""

    def __new__(cls, delay, **kwargs):
        from workers.minidns import MiniDNS

        class Slow(MiniDNS):
            def _transfer(self, query, origin, zone_id, serial, tcp):
                messages = super()._transfer(query, origin, zone_id, serial, tcp)

                def late():
                    time.sleep(delay)
                    yield from messages

                return late() if tcp else messages

        return Slow(**kwargs)


@pytest.fixture
def short_budget_worker(worker, system_env):
    """The only worker while the test runs: polls give up after 5 (waits of 0.2 s then 0.4 s: about 2 s
    in all) and an SOA query counts for 0.5 s; the session's worker takes no task meanwhile."""
    queue = celery_app.conf.task_default_queue
    assert celery_app.control.cancel_consumer(queue, destination=[worker.nodename], reply=True, timeout=10)
    try:
        own = celery_worker({**system_env, "POLL_MAX_RETRIES": "4", "POLL_SOA_ASKED_WINDOW": "0.5"})
        yield own
        own.stop()
    finally:
        assert celery_app.control.add_consumer(queue, destination=[worker.nodename], reply=True, timeout=10)


@needs_named
@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_slow_transfer_to_bind9_ends_active_not_error(short_budget_worker, clean_redis):
    from tests.conftest_servers import MiniDNSThread
    from tests.servers.bind9 import Bind9Server

    delay = 6.0  # the worker's blind budget: about 2 s
    recorder = Recorder(ttl=600, interval=0.1).start()
    with MiniDNSThread(SlowMiniDNS(delay, transfers=recorder)) as minidns:
        bind = Bind9Server(primary=minidns.address).start()
        try:
            pools.save_pool(None, name="default", ns_records=[{"hostname": "ns1.example.net.", "priority": 1}],
                               targets=[{"name": "bind-slow", "type": "bind9", "options": bind.backend_options,
                                         "masters": [f"{minidns.host}:{minidns.port}"]}],
                               nameservers=[{"host": bind.host, "port": bind.port}])
            zone = writes.create_zone(project_id="p", name="slow.example.com.", email="a@example.com")
            for step in ("create", "change"):
                if step == "change":
                    writes.create_recordset(zone.id, name="www", type="A", records=["192.0.2.7"])
                started = time.monotonic()
                settled = wait_until(lambda: (z := Zone.objects.get(id=zone.id)).action == "NONE" and z,
                                     timeout=60, message=f"the {step} to settle")
                assert settled.status == "ACTIVE", settled.reason
                assert time.monotonic() - started > delay * 0.9  # it did wait for the transfer
                assert query_soa_serial(zone.name, bind.host, bind.port) == settled.serial
                recorder.flush()
                done = [t for t in transfers.of_zones([zone.id])[str(zone.id)]
                        if t["type"] in ("AXFR", "IXFR") and t["serial"] == settled.serial]
                assert done and done[0]["state"] == "done" and done[0]["peer"] == "127.0.0.1"
                assert done[0]["ended_at"] - done[0]["started_at"] >= delay * 0.9
        finally:
            bind.stop()
            recorder.stop()
