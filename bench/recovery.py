#!/usr/bin/env python
"""Recovery benchmark: N zones in ERROR because one BIND9 target was down; the target comes back;
how long until every zone is ACTIVE again?

    bench/recovery.py [-n 1000]

Self-contained: MiniDNS, two private BIND9 targets, a private redis-server and Celery workers
against the local PostgreSQL (database dnsctl_bench_recovery); everything it starts is stopped
and removed. The zones reach ERROR the real way: bind-1 is
stopped, the zones are pushed (bind-0 takes them, bind-1 refuses), and the pool's threshold is
100%. Then bind-1 starts again and the clock runs from that moment; recovery is fired at once
(beat would fire it within RECOVERY_INTERVAL, 120 s by default: add that for the worst case).
"""
import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def wait_for(label, predicate, timeout):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        value = predicate()
        if value:
            return time.monotonic() - t0
        time.sleep(0.25)
    raise SystemExit(f"{label}: not done after {timeout} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()

    from tests.processes import RedisServer

    redis_server = RedisServer().start()  # a private broker: no other run's workers take our tasks
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    os.environ.setdefault("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dnsctl_bench_recovery")
    os.environ["TEST_REDIS_URL"] = redis_server.url
    os.environ["RECOVERY_MAX_ZONES"] = str(max(args.n, 5000))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from propagation import _create_database
    from tests.processes import celery_worker, minidns
    from tests.servers import free_port
    from tests.servers.bind9 import Bind9Server
    from workers import tasks
    from zones.models import Zone
    from zones.services import pools, writes

    _create_database(connection.settings_dict)
    call_command("migrate", verbosity=0)
    call_command("flush", interactive=False, verbosity=0)
    env = {"DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": os.environ["TEST_DATABASE_URL"],
           "REDIS_URL": settings.REDIS_URL, "CONN_MAX_AGE": "300", "RECOVERY_MAX_ZONES": os.environ["RECOVERY_MAX_ZONES"],
           "TARGET_MAX_RETRIES": "0", "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING")}
    started = []
    try:
        mhost, mport = "127.0.0.1", free_port()
        started.append(minidns(env, mhost, mport))
        binds = [Bind9Server(primary=(mhost, mport)).start() for _ in range(2)]
        started += binds
        for _ in range(int(os.environ.get("WORKERS", 2))):
            started.append(celery_worker(env, concurrency=int(os.environ.get("WORKER_CONCURRENCY", 4)),
                                         pool=os.environ.get("WORKER_POOL", "prefork")))
        pools.save_pool(
            None, name="default", ns_records=[{"hostname": "ns1.bench.test.", "priority": 1}],
            targets=[{"name": f"bind-{i}", "type": "bind9", "options": b.backend_options,
                      "masters": [f"{mhost}:{mport}"]} for i, b in enumerate(binds)],
            nameservers=[{"host": b.host, "port": b.port} for b in binds])

        binds[1].stop(keep_dir=True)
        writes._enqueue = lambda zone: None  # the zones are pushed in bulk below, as recovery does
        for i in range(args.n):
            writes.create_zone(project_id="bench", name=f"r{i}.recovery.test.", email="admin@recovery.test")
        Zone.objects.update(enqueued_at=None)
        tasks.recover.delay(force=True)
        took = wait_for("zones to fail", lambda: Zone.objects.filter(status="ERROR").count() == args.n, args.timeout)
        print(f"{args.n} zones in ERROR after {took:.1f} s (bind-1 down): "
              f"{Zone.objects.exclude(reason__contains='bind-1').count()} reasons without bind-1")

        t0 = time.monotonic()
        binds[1].start()
        tasks.recover.delay(force=True)
        took = wait_for("zones to recover", lambda: Zone.objects.filter(status="ACTIVE").count() == args.n,
                        args.timeout)
        took = time.monotonic() - t0
        served = sum(1 for i in range(0, args.n, max(1, args.n // 50))
                     if _serves(binds[1], f"r{i}.recovery.test."))
        print(f"recovery: {args.n} zones ERROR -> ACTIVE in {took:.1f} s after bind-1 came back "
              f"({args.n / took:.0f} zones/s); bind-1 serves {served} of {len(range(0, args.n, max(1, args.n // 50)))} "
              f"sampled zones")
    finally:
        for proc in reversed(started):
            proc.stop()
        redis_server.stop()


def _serves(bind, name):
    from workers.dnsclient import query_soa_serial

    return query_soa_serial(name, bind.host, bind.port) is not None


if __name__ == "__main__":
    main()
