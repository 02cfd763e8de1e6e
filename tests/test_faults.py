"""Faults heal by themselves: a whole dnsctl (gunicorn API, Celery worker and beat, MiniDNS) on a
private Redis, real PostgreSQL and two real BIND9s. The test only breaks things and reads the end
state of every zone and of every BIND9."""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import dns.message
import dns.query
import dns.rcode
import pytest
import requests

from tests.conftest import needs_named, wait_until
from tests.processes import ROOT, RedisServer, celery_beat, celery_worker, stop_all, web
from tests.servers import free_port
from tests.servers.bind9 import Bind9Server
from workers.dnsclient import query_soa_serial
from zones import accounts
from zones.models import PeriodicRun, Zone
from zones.services import pools

pytestmark = [needs_named, pytest.mark.integration, pytest.mark.django_db(transaction=True)]
RECOVERY_INTERVAL = 2
VISIBILITY_TIMEOUT = 6
OUTAGE = 25  # longer than the 20 reconnects after which Celery gives up on Redis by default


class Deployment:
    """dnsctl's processes on a private Redis; each can be killed and started again."""

    def __init__(self, env):
        self.env, self.dir = env, tempfile.mkdtemp(prefix="dnsctl-faults-")
        self.redis = RedisServer().start()
        # TMPDIR: a worker killed in the middle of an rndc call leaves its key file here, not in /tmp.
        self.env.update(REDIS_URL=self.redis.url, COORDINATION_URL=self.redis.url, TMPDIR=self.dir)
        self.port = free_port(udp_too=False)
        self.workers, self.beats = [celery_worker(self.env)], [celery_beat(self.env, self.dir)]
        self.web = web(self.env, self.port)

    def revive(self):
        """Start again what exited, as the process supervisor does (docker-compose's restart policy):
        kombu's Redis transport can end a worker with "Unrecoverable error" when its broker vanishes."""
        for group, start in ((self.workers, lambda: celery_worker(self.env)),
                             (self.beats, lambda: celery_beat(self.env, self.dir))):
            for i, process in enumerate(group):
                if process.proc.poll() is not None:
                    process.stop()
                    group[i] = start()

    @property
    def api(self):
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        stop_all([self.web, *self.workers, *self.beats])
        self.redis.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def deployment(system_env, minidns_address):
    env = {**system_env, "RECOVERY_INTERVAL": str(RECOVERY_INTERVAL), "PERIODIC_SYNC_INTERVAL": "0",
           "PURGE_INTERVAL": "0", "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT)}
    deployment = Deployment(env)
    yield deployment
    deployment.stop()


def pool_spec(binds, minidns_address):
    host, port = minidns_address
    return {
        "targets": [{"name": f"bind-{i}", "type": "bind9", "options": b.backend_options, "masters": [f"{host}:{port}"]}
                    for i, b in enumerate(binds)],
        "nameservers": [{"host": b.host, "port": b.port} for b in binds],
    }


@pytest.fixture
def pool(binds, minidns_address, deployment):
    return pools.save_pool(None, name="default", threshold_percentage=100,
                              ns_records=[{"hostname": "ns1.example.net.", "priority": 1}],
                              **pool_spec(binds, minidns_address))


@pytest.fixture
def api(django_user_model, deployment):
    user = accounts.api_user("tenant", "project-1")
    session = requests.Session()
    session.headers["X-Auth-Token"] = accounts.issue_token(user)
    return session


def create_zones(deployment, api, count):
    ids = []
    for _ in range(count):
        response = api.post(f"{deployment.api}/v2/zones", timeout=30,
                            json={"name": f"z{uuid.uuid4().hex[:10]}.example.com.", "email": "admin@example.com"})
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    return ids


def wait_all(ids, status, timeout=90, each_poll=lambda: None):
    def done():
        each_poll()
        zones = list(Zone.objects.filter(id__in=ids))
        return len(zones) == len(ids) and all(z.status == status for z in zones) and zones
    try:
        return wait_until(done, timeout=timeout, message=f"{len(ids)} zones to be {status}")
    except AssertionError as exc:
        states = Zone.objects.filter(id__in=ids).values_list("name", "status", "action", "reason")
        raise AssertionError(f"{exc}: {list(states)}") from None


def assert_served_everywhere(zones, binds):
    for zone in zones:
        for bind in binds:
            assert query_soa_serial(zone.name, bind.host, bind.port) == zone.serial, (zone.name, bind.port)


def refused(name, bind):
    response = dns.query.udp(dns.message.make_query(name, "SOA"), bind.host, port=bind.port, timeout=2)
    return response.rcode() == dns.rcode.REFUSED


def test_zones_in_error_recover_when_the_target_returns(deployment, binds, pool, api):
    binds[1].stop(keep_dir=True)
    try:
        ids = create_zones(deployment, api, 5)
        errors = wait_all(ids, "ERROR", timeout=60)
        assert all("bind-1" in z.reason for z in errors)
    finally:
        binds[1].start()
    zones = wait_all(ids, "ACTIVE")  # no manual step: beat's recovery does it
    assert all(z.action == "NONE" and not z.reason for z in zones)
    assert_served_everywhere(zones, binds)


def test_worker_killed_in_a_target_action_is_redelivered(deployment, binds, pool, api):
    os.kill(binds[0].proc.pid, signal.SIGSTOP)  # rndc to bind-0 now hangs: the action is in flight
    try:
        [zone_id] = create_zones(deployment, api, 1)
        wait_until(lambda: "target_batch" in deployment.workers[0].log_text(), timeout=30,
                   message="the worker to take the target action")
        time.sleep(0.5)
        assert Zone.objects.get(id=zone_id).status == "PENDING"
        deployment.workers[0].kill()
    finally:
        os.kill(binds[0].proc.pid, signal.SIGCONT)
    killed_log = deployment.workers[0].log_text()
    received = set(re.findall(r"workers\.tasks\.target_batch\[([0-9a-f-]+)\] received", killed_log))
    unfinished = {task for task in received if f"target_batch[{task}] succeeded" not in killed_log}
    assert unfinished, killed_log[-2000:]
    deployment.workers[0].stop()
    time.sleep(VISIBILITY_TIMEOUT)  # kombu restores a lost task once it is older than this, on a 10 s cycle
    deployment.workers[0] = celery_worker(deployment.env)
    # Redis hands an unacknowledged task out again once its visibility timeout has passed.
    wait_until(lambda: any(f"target_batch[{task}] succeeded" in deployment.workers[0].log_text()
                           for task in unfinished), timeout=60, message="the killed task to be delivered again")
    [zone] = wait_all([zone_id], "ACTIVE")
    assert_served_everywhere([zone], binds)


def test_an_emptied_target_is_rebuilt_by_target_sync(deployment, binds, pool, api, minidns_address):
    ids = create_zones(deployment, api, 4)
    wait_all(ids, "ACTIVE")
    assert api.delete(f"{deployment.api}/v2/zones/{ids[-1]}", timeout=30).status_code == 202
    wait_until(lambda: Zone.objects.get(id=ids[-1]).status == "DELETED", timeout=60, message="the delete")
    live, deleted = list(Zone.objects.filter(id__in=ids[:-1])), Zone.objects.get(id=ids[-1])

    binds[1].stop()  # its directory and zones are gone: a new, empty server takes its place
    binds[1] = Bind9Server(primary=minidns_address).start()
    pools.save_pool(pool, name=pool.name, threshold_percentage=100, **pool_spec(binds, minidns_address))
    assert all(refused(z.name, binds[1]) for z in live)

    result = subprocess.run([sys.executable, "manage.py", "target_sync", "--pool", "default", "--target", "bind-1",
                             "--since", "1970-01-01T00:00:00Z"], cwd=ROOT, env={**os.environ, **deployment.env},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Syncing 3 zones on target bind-1"
    wait_until(lambda: all(query_soa_serial(z.name, binds[1].host, binds[1].port) == z.serial for z in live),
               timeout=60, message="bind-1 to serve every live zone again")
    assert refused(deleted.name, binds[1])
    assert [z.status for z in Zone.objects.filter(id__in=ids[:-1])] == ["ACTIVE"] * 3

    bad = subprocess.run([sys.executable, "manage.py", "target_sync", "--pool", "default", "--target", "bind-9",
                          "--since", "1970-01-01T00:00:00Z"], cwd=ROOT, env={**os.environ, **deployment.env},
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "has no target bind-9 (its targets: bind-0, bind-1)" in bad.stderr


def test_redis_restarted_mid_run_loses_nothing(deployment, binds, pool, api):
    ids = create_zones(deployment, api, 4)
    deployment.redis.crash()  # every queued task and chord counter is gone
    down_since = time.monotonic()
    try:
        ids += create_zones(deployment, api, 3)  # the API still takes changes: PostgreSQL has them
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - down_since)))
    finally:
        deployment.redis.start()
    deployment.revive()
    ids += create_zones(deployment, api, 3)
    # a change lost with Redis comes back by recovery, once older than max_propagation_seconds()
    zones = wait_all(ids, "ACTIVE", timeout=180, each_poll=deployment.revive)
    assert len(zones) == 10
    assert_served_everywhere(zones, binds)


def test_two_nodes_run_recovery_once_per_interval(deployment, pool):
    deployment.workers.append(celery_worker(deployment.env))
    deployment.beats.append(celery_beat(deployment.env, deployment.dir))
    window = 5 * RECOVERY_INTERVAL
    runs = lambda: PeriodicRun.objects.filter(name="recovery").values_list("runs", flat=True).first() or 0  # noqa: E731
    ticks = lambda: sum(p.log_text().count("(workers.tasks.recover)") for p in deployment.beats)  # noqa: E731
    before_runs, before_ticks = runs(), ticks()
    time.sleep(window)
    ran, fired = runs() - before_runs, ticks() - before_ticks
    assert fired >= 8  # both beats fire every interval ...
    assert 3 <= ran <= window / (0.9 * RECOVERY_INTERVAL) + 1  # ... and recovery runs once per interval
