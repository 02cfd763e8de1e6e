"""bin/start's supervisor: bootstrap_demo writes the configuration, supervisord runs every process,
a process killed with SIGKILL is started again while the others keep running, the system still
works afterwards, and SIGINT (Ctrl-C) stops them all. Also: a demo pool made before BIND9 was
installed gets its target when bootstrap_demo runs again."""
import os
import signal
import subprocess
import sys
import uuid

import pytest
import requests
from django.core.management import call_command

from tests.conftest import needs_named, wait_until
from tests.processes import ROOT, Process, RedisServer
from tests.servers import free_port
from workers.dnsclient import query_soa_serial
from zones.models import Pool, Zone
from zones.services import pools

pytestmark = [needs_named, pytest.mark.integration, pytest.mark.django_db(transaction=True)]
PROGRAMS = ("web", "worker", "beat", "minidns", "producer", "bind9")


class Supervised:
    """bootstrap_demo + supervisord in a run directory of its own, on a private Redis."""

    def __init__(self, env, run_dir):
        self.redis = RedisServer().start()
        self.run_dir = str(run_dir)
        self.ports = {"api": free_port(udp_too=False), "minidns": free_port(), "bind": free_port(),
                      "rndc": free_port(udp_too=False)}
        os.makedirs(f"{self.run_dir}/metrics")
        self.env = {**env, "REDIS_URL": self.redis.url, "COORDINATION_URL": self.redis.url,
                    "PROMETHEUS_MULTIPROC_DIR": f"{self.run_dir}/metrics",
                    "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}:/usr/sbin"}
        subprocess.run([sys.executable, "manage.py", "bootstrap_demo", "--run-dir", self.run_dir,
                        "--api-port", str(self.ports["api"]), "--minidns-port", str(self.ports["minidns"]),
                        "--bind-port", str(self.ports["bind"]), "--rndc-port", str(self.ports["rndc"]),
                        "--startsecs", "1"],  # each of the test's seven starts counts as such a second sooner
                       cwd=ROOT, env={**os.environ, **self.env}, check=True, capture_output=True)
        self.conf = f"{self.run_dir}/supervisord.conf"
        self.process = Process("supervisord", [sys.executable, "-m", "supervisor.supervisord", "-c", self.conf],
                               self.env).start()
        self.process.wait_for(lambda: self.all_running(), timeout=60, what="running every program")

    def status(self) -> dict[str, tuple[str, int]]:
        out = subprocess.run([sys.executable, "-m", "supervisor.supervisorctl", "-c", self.conf, "status"],
                             capture_output=True, text=True, env={**os.environ, **self.env}).stdout
        result = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 2:
                pid = int(parts[3].rstrip(",")) if parts[1] == "RUNNING" else 0
                result[parts[0]] = (parts[1], pid)
        return result

    def all_running(self):
        status = self.status()
        return set(status) == set(PROGRAMS) and all(state == "RUNNING" for state, _ in status.values()) and status

    @property
    def api(self):
        return f"http://127.0.0.1:{self.ports['api']}"

    def stop(self):
        self.process.stop(timeout=30)
        self.redis.stop()


@pytest.fixture
def supervised(system_env, tmp_path):
    system = Supervised(system_env, tmp_path)
    yield system
    system.stop()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_killed_process_comes_back_and_the_others_keep_running(supervised):
    before = supervised.all_running()
    for name in PROGRAMS:
        pids = {n: pid for n, (_, pid) in supervised.status().items()}
        os.kill(pids[name], signal.SIGKILL)
        now = wait_until(lambda: (s := supervised.all_running()) and s[name][1] != pids[name] and s,
                         timeout=60, interval=0.3, message=f"{name} started again")
        assert {n: pid for n, (_, pid) in now.items() if n != name} == {n: p for n, p in pids.items() if n != name}
    assert all(before[n][1] != pid for n, (_, pid) in supervised.status().items())

    # The system still works: the API takes a zone, the worker pushes it to BIND9, which transfers it from MiniDNS.
    token = open(f"{supervised.run_dir}/api-token").read().strip()
    name = f"after-{uuid.uuid4().hex[:8]}.example.test."
    response = wait_until(lambda: _post_zone(supervised.api, token, name), timeout=30, message="the API answering")
    assert response.status_code == 202, response.text
    zone_id = response.json()["id"]
    wait_until(lambda: Zone.objects.get(id=zone_id).status == "ACTIVE", timeout=60, message="the zone ACTIVE")
    assert query_soa_serial(name, "127.0.0.1", supervised.ports["bind"]) == Zone.objects.get(id=zone_id).serial
    health = requests.get(supervised.api + "/health", timeout=5)
    assert health.status_code == 200, health.text

    # Ctrl-C: supervisord stops every program, then itself.
    pids = [pid for _, pid in supervised.status().values()]
    supervised.process.proc.send_signal(signal.SIGINT)
    supervised.process.proc.wait(30)
    wait_until(lambda: not any(alive(pid) for pid in pids), timeout=20, message="every program stopped")


def _post_zone(api, token, name):
    try:
        return requests.post(api + "/v2/zones", json={"name": name, "email": "admin@example.test"},
                             headers={"X-Auth-Token": token}, timeout=5)
    except requests.ConnectionError:
        return None


def test_bootstrap_gives_a_targetless_demo_pool_its_bind9(tmp_path, capsys):
    """The pool as a first run without BIND9 left it; named is installed now (needs_named)."""
    pools.save_pool(None, name="default", description="Demo pool: add a target",
                       ns_records=[{"hostname": "ns1.dnsctl.test.", "priority": 1}])
    call_command("bootstrap_demo", run_dir=str(tmp_path), bind_port=15399, rndc_port=19599, minidns_port=15398)
    pool = Pool.objects.get(name="default")
    [target] = pool.targets.all()
    assert (target.name, target.type, target.options["port"], target.masters) == (
        "bind9-demo", "bind9", 15399, ["127.0.0.1:15398"])
    assert [(ns.host, ns.port) for ns in pool.nameservers.all()] == [("127.0.0.1", 15399)]
    assert "bind9-demo) is its target now" in capsys.readouterr().out
    conf = (tmp_path / "supervisord.conf").read_text()
    assert all(f"[program:{name}]" in conf for name in PROGRAMS) and "autorestart=true" in conf
    assert oct((tmp_path / "supervisord.conf").stat().st_mode & 0o777) == "0o600"

    call_command("bootstrap_demo", run_dir=str(tmp_path), bind_port=15399, rndc_port=19599, minidns_port=15398)
    assert Pool.objects.get(name="default").targets.get() == target  # a second run changes nothing
    assert "is its target now" not in capsys.readouterr().out
