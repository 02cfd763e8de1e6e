#!/usr/bin/env python
"""Propagation benchmark against a running dnsctl (bin/start, or --self-contained).

Creates N zones through the REST API, then changes a recordset in each, then deletes them,
and prints per phase: changes/s (API calls over the phase's wall time until the last zone
settled) and p50/p95/max seconds from the API call to ACTIVE (or, for deletes, gone).

    bench/propagation.py --url http://127.0.0.1:8000 --token TOKEN [-n 200]
    bench/propagation.py --self-contained [-n 200] [--pool bind9|mixed|catalog]

--self-contained runs the same processes as the integration tests (private DNS servers, Celery
workers, MiniDNS, the API in-process on a live server) against the local PostgreSQL and Redis
db 14, and removes everything it started. --pool picks the pool: two BIND9s (default); `mixed`,
one each of BIND9, Knot, PowerDNS and NSD driven by their backends; `catalog`, BIND9, Knot and
PowerDNS consuming the pool's catalog zone.
"""
import argparse
import concurrent.futures as futures
import os
import sys
import threading
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def percentile(values, pct):
    values = sorted(values)
    if not values:
        return float("nan")
    k = max(0, min(len(values) - 1, round(pct / 100 * (len(values) - 1))))
    return values[k]


class Client:
    def __init__(self, url, token):
        self.url, self.session = url.rstrip("/"), requests.Session()
        self.session.headers.update({"X-Auth-Token": token, "Content-Type": "application/json"})
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=32)
        self.session.mount("http://", adapter)
        self.lock = threading.Lock()

    def call(self, method, path, **kw):
        r = self.session.request(method, self.url + path, timeout=30, **kw)
        if r.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:300]}")
        return r.json() if r.content else {}

    def zones(self, prefix, status=None):
        """The run's zones (optionally only those in `status`), following links.next."""
        found, path = {}, f"/v2/zones?name={prefix}*&limit=1000" + (f"&status={status}" if status else "")
        while path:
            body = self.call("GET", path)
            found.update({z["id"]: z for z in body["zones"]})
            nxt = body["links"].get("next")
            path = nxt[len(self.url):] if nxt else None
        return found


def server_time(z):
    """When the server settled the zone: its updated_at as unix time (same machine, same clock)."""
    from datetime import datetime

    return datetime.fromisoformat(z["updated_at"].replace("Z", "+00:00")).timestamp()


def run_phase(client, label, keys, start_fn, prefix, concurrency, timeout, gone=False):
    """Fire one API call per zone, wait until none of the run's zones is PENDING, report latencies.

    Create/update latency is the zone's own updated_at (set when it turned ACTIVE or ERROR) minus
    the wall time of the API call; a delete is timed when the zone leaves the list (polled every
    50 ms, so that much resolution). Only PENDING zones are listed while waiting, to keep the
    benchmark's own load small.
    """
    started = {}
    t0 = time.monotonic()

    def fire(key):
        before = time.time()
        zid = start_fn(key)
        started[zid] = before
        return zid

    with futures.ThreadPoolExecutor(concurrency) as pool:
        zone_ids = list(pool.map(fire, keys))
    fired = time.monotonic()
    deadline, gone_at = fired + timeout, {}
    pending = set(zone_ids)
    while pending and time.monotonic() < deadline:
        listed = client.zones(prefix, None if gone else "PENDING")
        now = time.time()
        for zid in list(pending):
            if zid not in listed:
                gone_at[zid] = now
                pending.discard(zid)
        time.sleep(0.05)
    wall = time.monotonic() - t0
    final = client.zones(prefix)
    if gone:
        errors = {z: final[z].get("reason") for z in zone_ids if z in final}
        lat = [gone_at[z] - started[z] for z in gone_at if z not in final]
    else:
        errors = {z: final[z].get("reason") for z in zone_ids if z in final and final[z]["status"] != "ACTIVE"}
        lat = [server_time(final[z]) - started[z] for z in zone_ids if z in final and z not in errors]
    print(f"{label:<8} n={len(keys):<5} api {len(keys) / (fired - t0):7.1f} calls/s   "
          f"settled {len(lat) / wall:6.1f} changes/s   p50 {percentile(lat, 50):.3f}s  "
          f"p95 {percentile(lat, 95):.3f}s  max {max(lat) if lat else float('nan'):.3f}s   "
          f"errors {len(errors)}  unfinished {len(pending)}")
    for zid, reason in list(errors.items())[:3]:
        print(f"    error: {zid}: {reason}")
    return zone_ids


def benchmark(url, token, n, concurrency, timeout):
    client = Client(url, token)
    prefix = f"b{uuid.uuid4().hex[:6]}"
    names = [f"{prefix}-{i}.bench.test." for i in range(n)]
    print(f"{n} zones against {url}, {concurrency} concurrent API clients")

    zone_ids = run_phase(client, "create", names, lambda name: client.call(
        "POST", "/v2/zones", json={"name": name, "email": "bench@bench.test"})["id"], prefix, concurrency, timeout)

    def change(zid):
        client.call("POST", f"/v2/zones/{zid}/recordsets", json={"name": "www", "type": "A", "records": ["192.0.2.1"]})
        return zid

    run_phase(client, "update", zone_ids, change, prefix, concurrency, timeout)
    run_phase(client, "delete", zone_ids, lambda zid: (client.call("DELETE", f"/v2/zones/{zid}"), zid)[1],
              prefix, concurrency, timeout, gone=True)


def _pool(kind, mhost, mport):
    """Start the servers of a pool kind: (servers, save_pool() arguments)."""
    from tests.servers.bind9 import Bind9Server
    from tests.servers.knot import KnotServer
    from tests.servers.nsd import NsdServer
    from tests.servers.pdns import PdnsServer
    from workers.backends.pdns import PowerDNSBackend

    primary, catalog = (mhost, mport), ("catalog.bench.test." if kind == "catalog" else None)
    if kind == "bind9":
        servers = {f"bind-{i}": (Bind9Server(primary=primary), "bind9") for i in range(2)}
    else:
        servers = {"bind9": (Bind9Server(primary=primary, catalog=catalog), "bind9"),
                   "knot": (KnotServer(masters=[primary], catalog=catalog), "knot"), "pdns": (PdnsServer(), "pdns")}
        if kind == "mixed":
            servers["nsd"] = (NsdServer(masters=[primary]), "nsd")
    started = []
    try:
        for server, _ in servers.values():
            started.append(server.start())
        if catalog:
            pdns = servers["pdns"][0]
            PowerDNSBackend("pdns", pdns.backend_options, [primary]).create_consumer(catalog)
    except BaseException:
        for server in started:
            server.stop()
        raise
    pool = {"notify_source": mhost, "catalog_zone": catalog,
            "targets": [{"name": name, "type": type_, "options": server.backend_options,
                         "masters": [f"{mhost}:{mport}"]} for name, (server, type_) in servers.items()],
            "nameservers": [{"host": server.host, "port": server.port} for server, _ in servers.values()]}
    return started, pool


def self_contained(n, concurrency, timeout, pool_kind="bind9"):
    """Bring up the integration-test stack on loopback, run the benchmark, tear it all down."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    os.environ.setdefault("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dnsctl_bench")
    os.environ.setdefault("TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
    os.environ.setdefault("API_WRITE_RATE", "")  # a load generator: its writes are not rate-limited
    import django

    django.setup()
    import redis
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test.testcases import LiveServerThread

    from tests.processes import celery_worker, minidns
    from tests.servers import free_port
    from zones import accounts
    from zones.services import pools

    db = connection.settings_dict
    _create_database(db)
    call_command("migrate", verbosity=0)
    call_command("flush", interactive=False, verbosity=0)
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    env = {"DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": os.environ["TEST_DATABASE_URL"],
           "REDIS_URL": settings.REDIS_URL, "CONN_MAX_AGE": "300", "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING")}
    started = []
    try:
        mhost, mport = "127.0.0.1", free_port()
        started.append(minidns(env, mhost, mport))
        servers, pool = _pool(pool_kind, mhost, mport)
        started += servers
        for _ in range(int(os.environ.get("WORKERS", 2))):  # one consumer loop tops out near 90 tasks/s
            started.append(celery_worker(env, concurrency=int(os.environ.get("WORKER_CONCURRENCY", 4)),
                                         pool=os.environ.get("WORKER_POOL", "prefork")))
        pools.save_pool(None, name="default", ns_records=[{"hostname": "ns1.bench.test.", "priority": 1}], **pool)
        print(f"pool {pool_kind}: {', '.join(t['name'] for t in pool['targets'])}")
        token = accounts.issue_token(accounts.api_user("bench", "bench"))
        server = LiveServerThread("127.0.0.1", _static_handler(), connections_override={}, port=0)
        server.daemon = True
        server.start()
        server.is_ready.wait()
        started.append(server)
        benchmark(f"http://127.0.0.1:{server.port}", token, n, concurrency, timeout)
    finally:
        for proc in reversed(started):  # every one, even when stopping another failed
            try:
                if hasattr(proc, "terminate"):
                    proc.terminate()
                    proc.join()
                else:
                    proc.stop()
            except Exception as exc:  # noqa: BLE001
                print(f"stopping {proc!r} failed: {exc!r}", file=sys.stderr)


def _static_handler():
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.handlers.wsgi import WSGIHandler

    return lambda *a, **k: StaticFilesHandler(WSGIHandler())


def _create_database(db):
    import psycopg2

    conn = psycopg2.connect(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"] or "postgres",
                            dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]])
        if not cur.fetchone():
            cur.execute(f'CREATE DATABASE "{db["NAME"]}"')
    conn.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("DNSCTL_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--token", default=os.environ.get("DNSCTL_TOKEN"))
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent API clients")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for a phase to settle")
    parser.add_argument("--self-contained", action="store_true")
    parser.add_argument("--pool", choices=["bind9", "mixed", "catalog"], default="bind9",
                        help="with --self-contained: the pool's servers")
    args = parser.parse_args()
    if args.self_contained:
        self_contained(args.n, args.concurrency, args.timeout, args.pool)
    elif not args.token:
        parser.error("--token (or DNSCTL_TOKEN) is required; bin/start prints it")
    else:
        benchmark(args.url, args.token, args.n, args.concurrency, args.timeout)


if __name__ == "__main__":
    main()
