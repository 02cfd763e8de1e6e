#!/usr/bin/env python
"""Propagation benchmark against a running dnsctl (bin/start, --self-contained or --deployment).

Times a few single changes on the idle system, then creates N zones through the REST API, adds a
recordset to each (rs-create), changes its records (rs-update), deletes the zones, and prints per
phase: changes/s (changes settled over the phase's wall time), the API call's p50, and p50/p95/max
seconds from the API call to ACTIVE (or, for deletes, gone).

    bench/propagation.py --url http://127.0.0.1:8000 --token TOKEN [-n 200] [-c 8]
    bench/propagation.py --self-contained [-n 200] [--pool bind9|mixed|catalog]
    bench/propagation.py --deployment [-n 200] [-c 16] [--profile DIR] [--offered 50]

--deployment starts the production-like deployment of bench/deployment.py (private PostgreSQL and
Redis, gunicorn -w 3, the worker -P threads -c 16, beat, MiniDNS, one BIND9), checks after each
phase that BIND9 serves every zone as it should, and prints the CPU seconds each process spent in
the phase; --profile DIR also runs py-spy on the worker, gunicorn, MiniDNS and beat during each
phase and writes DIR/<phase>-<process>.txt (collapsed stacks: speedscope.app opens them) and
DIR/<phase>-summary.txt (time per category and top functions). CPU figures with --profile are
inflated by py-spy's pauses: measure them without it.

--self-contained runs the same processes as the integration tests (private DNS servers, Celery
workers, MiniDNS, the API in-process on a live server) against the local PostgreSQL and Redis
db 14, and removes everything it started. --pool picks the pool: two BIND9s (default); `mixed`,
one each of BIND9, Knot, PowerDNS and NSD driven by their backends; `catalog`, BIND9, Knot and
PowerDNS consuming the pool's catalog zone.
"""
import argparse
import concurrent.futures as futures
import contextlib
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


def run_phase(client, label, keys, start_fn, prefix, concurrency, timeout, gone=False, hooks=None, offered=None):
    """Fire one API call per zone, wait until none of the run's zones is PENDING, report latencies.

    With `offered` (changes per second), the calls are an open loop: call i is due i/offered seconds
    after the phase starts, whether or not the earlier ones have finished (`concurrency` threads make
    them), and latencies count from when a call was due, so an API that falls behind shows in them.

    Create/update latency is the zone's own updated_at (set when it turned ACTIVE or ERROR) minus
    the wall time of the API call; a delete is timed when the zone leaves the list (polled every
    50 ms from the phase's start, so that much resolution, plus a list's own time). Only PENDING zones
    are listed while waiting for creates and updates, to keep the benchmark's own load small. hooks (start(label), stop(label, changes)) wrap the phase.
    """
    started, calls = {}, []
    if hooks:
        hooks.start(label)
    t0, t0_wall = time.monotonic(), time.time()

    def fire(i, key):
        before, t = time.time(), time.monotonic()
        if offered:
            due = t0 + i / offered
            if due > t:
                time.sleep(due - t)
            before, t = t0_wall + i / offered, time.monotonic()
        zid = start_fn(key)
        calls.append(time.monotonic() - t)
        started[zid] = before
        return zid

    gone_at, firing = {}, threading.Event()

    def watch():
        """A delete's end is seen in the list: look while the later calls are still being made, or the
        first deletes would count the whole firing as their latency."""
        while firing.is_set():
            listed = client.zones(prefix)
            now = time.time()
            for zid in list(started):
                if zid not in listed:
                    gone_at.setdefault(zid, now)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    if gone:
        firing.set()
        watcher.start()
    with futures.ThreadPoolExecutor(concurrency) as pool:
        zone_ids = list(pool.map(fire, range(len(keys)), keys))
    firing.clear()
    if gone:
        watcher.join()
    fired = time.monotonic()
    deadline = fired + timeout
    pending = set(zone_ids) - set(gone_at)
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
    offer = f"offered {offered:g}/s, " if offered else ""
    print(f"{label:<9} n={len(keys):<4} {offer}api {len(keys) / (fired - t0):6.1f} calls/s, p50 {percentile(calls, 50):.3f}s"
          f"   settled {len(lat) / wall:6.1f} changes/s   ACTIVE p50 {percentile(lat, 50):.3f}s  "
          f"p95 {percentile(lat, 95):.3f}s  max {max(lat) if lat else float('nan'):.3f}s   "
          f"errors {len(errors)}  unfinished {len(pending)}", flush=True)
    for zid, reason in list(errors.items())[:3]:
        print(f"    error: {zid}: {reason}")
    if hooks:
        hooks.stop(label, len(lat))
    return zone_ids


def served(target, names, rdtype, expect, concurrency=8):
    """How many zones the target serves as expected: the SOA (create), www's address, or REFUSED (delete)."""
    import dns.message
    import dns.query
    import dns.rcode

    def check(name):
        qname = name if rdtype == "SOA" else "www." + name
        for _ in range(3):
            try:
                r = dns.query.udp(dns.message.make_query(qname, rdtype), target[0], port=target[1], timeout=1)
            except Exception:  # noqa: BLE001 - a lost datagram: ask again
                continue
            if expect == "REFUSED":
                return r.rcode() == dns.rcode.REFUSED
            return r.rcode() == dns.rcode.NOERROR and any(expect in rr.to_text() for rr in r.answer)
        return False

    with futures.ThreadPoolExecutor(concurrency) as pool:
        ok = sum(pool.map(check, names))
    print(f"    target serves {ok}/{len(names)} as expected ({rdtype} {expect})", flush=True)
    return ok


def idle_latency(client, prefix, count=10):
    """One change at a time on an otherwise idle system: p50/max seconds to ACTIVE for a zone
    create and a recordset create (the zone polled every 10 ms), then the zones are deleted."""
    lat = {"create": [], "rs-create": []}
    ids = []
    for i in range(count):
        for label in ("create", "rs-create"):
            before = time.time()
            if label == "create":
                zid = client.call("POST", "/v2/zones", json={"name": f"{prefix}-idle{i}.bench.test.",
                                                             "email": "bench@bench.test"})["id"]
                ids.append(zid)
            else:
                client.call("POST", f"/v2/zones/{zid}/recordsets",
                            json={"name": "www", "type": "A", "records": ["192.0.2.1"]})
            while True:
                z = client.call("GET", f"/v2/zones/{zid}")
                if z["status"] != "PENDING":
                    break
                time.sleep(0.01)
            lat[label].append(server_time(z) - before)
    for zid in ids:
        client.call("DELETE", f"/v2/zones/{zid}")
    print("idle     " + "   ".join(f"{label} ACTIVE p50 {percentile(v, 50):.3f}s max {max(v):.3f}s"
                                   for label, v in lat.items()) + f"   ({count} changes each, one at a time)",
          flush=True)


def benchmark(url, token, n, concurrency, timeout, target=None, hooks=None, idle=10, offered=None):
    """The four phases create, rs-create (a recordset), rs-update (its records), delete; with a
    target (host, port), check after each phase that it serves every zone as it should; with
    `offered`, each phase's calls come at that steady rate (see run_phase)."""
    client = Client(url, token)
    prefix = f"b{uuid.uuid4().hex[:6]}"
    names = [f"{prefix}-{i}.bench.test." for i in range(n)]
    print(f"{n} zones against {url}, {concurrency} concurrent API clients"
          + (f", {offered:g} changes/s offered" if offered else ""), flush=True)
    if idle:
        idle_latency(client, prefix + "i", idle)

    zone_ids = run_phase(client, "create", names, lambda name: client.call(
        "POST", "/v2/zones", json={"name": name, "email": "bench@bench.test"})["id"], prefix, concurrency, timeout,
        hooks=hooks, offered=offered)
    if target:
        served(target, names, "SOA", "SOA")
    recordsets = {}

    def add(zid):
        recordsets[zid] = client.call("POST", f"/v2/zones/{zid}/recordsets",
                                      json={"name": "www", "type": "A", "records": ["192.0.2.1"]})["id"]
        return zid

    def change(zid):
        client.call("PUT", f"/v2/zones/{zid}/recordsets/{recordsets[zid]}", json={"records": ["192.0.2.2"]})
        return zid

    run_phase(client, "rs-create", zone_ids, add, prefix, concurrency, timeout, hooks=hooks, offered=offered)
    if target:
        served(target, names, "A", "192.0.2.1")
    run_phase(client, "rs-update", zone_ids, change, prefix, concurrency, timeout, hooks=hooks, offered=offered)
    if target:
        served(target, names, "A", "192.0.2.2")
    run_phase(client, "delete", zone_ids, lambda zid: (client.call("DELETE", f"/v2/zones/{zid}"), zid)[1],
              prefix, concurrency, timeout, gone=True, hooks=hooks, offered=offered)
    if target:
        served(target, names, "SOA", "REFUSED")


class PhaseCpu:
    """Hooks around each phase: CPU seconds per process of the deployment (and py-spy profiles)."""

    def __init__(self, deployment, profiler=None):
        self.deployment, self.profiler, self.before = deployment, profiler, None

    def start(self, label):
        if self.profiler:
            self.profiler.start(label)
            self.deployment.statements()
        from bench.deployment import kernel_drops

        self.opened, self.drops = self.deployment.connections(), kernel_drops()
        self.before = self.deployment.cpu()

    def stop(self, label, changes):
        from bench.deployment import cpu_table, kernel_drops

        after = self.deployment.cpu()
        opened = self.deployment.connections()
        print(cpu_table(self.before, after, changes), flush=True)
        drops = kernel_drops()
        print("    connections opened: " + ", ".join(f"{k} {opened[k] - self.opened[k]}" for k in opened)
              + "; dropped by the kernel (machine-wide), full " + ", ".join(
                  f"{k} {drops[k] - self.drops[k]}" for k in drops), flush=True)
        if self.profiler:
            statements = self.deployment.statements(changes)
            (self.profiler.outdir / f"{label}-postgres.txt").write_text(statements + "\n")
            print("    PostgreSQL " + statements.splitlines()[0], flush=True)
            print(f"    profile: {self.profiler.outdir}/{label}-*.txt; top of it:", flush=True)
            text = self.profiler.stop(label)
            print("\n".join("    " + line for line in text.splitlines() if line.startswith("==")
                            or "%  " in line and line.index("%") < 12)[:4000], flush=True)


def deployment_run(n, clients, timeout, profile_dir=None, rate=50, idle=10, offered=None):
    """Start the production-like deployment (bench/deployment.py), run the phases, stop it all."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "dnsctl.settings"
    from bench.deployment import Deployment, Profiler

    stack = Deployment(statements=bool(profile_dir))
    try:
        stack.start()
        print(f"deployment: PostgreSQL, Redis, gunicorn -w {stack.workers}, worker -P threads -c {stack.threads}, "
              f"beat, MiniDNS, BIND9 (all private, on loopback; {os.cpu_count()} CPUs)", flush=True)
        profiler = Profiler(profile_dir, stack.python_pids(), rate) if profile_dir else None
        benchmark(stack.url, stack.token, n, clients, timeout, target=stack.target,
                  hooks=PhaseCpu(stack, profiler), idle=idle, offered=offered)
    finally:
        stack.stop()


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


def self_contained(n, concurrency, timeout, pool_kind="bind9", offered=None):
    """Bring up the integration-test stack on loopback, run the benchmark, tear it all down."""
    workers = int(os.environ.get("WORKERS", 2))  # one consumer loop tops out near 90 tasks/s
    with loopback_stack("dnsctl_bench", pool_kind, workers=workers,
                        concurrency=int(os.environ.get("WORKER_CONCURRENCY", 4)),
                        worker_pool=os.environ.get("WORKER_POOL", "prefork")) as (url, token):
        benchmark(url, token, n, concurrency, timeout, offered=offered)


@contextlib.contextmanager
def loopback_stack(database, pool_kind="bind9", workers=1, concurrency=2, worker_pool="prefork"):
    """The integration-test stack on loopback (the tests' settings, `database` on the local PostgreSQL
    unless TEST_DATABASE_URL says otherwise): MiniDNS, the pool's servers, Celery workers and the API
    in a thread; yields (API url, a member's token) and stops every one of them after."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    os.environ.setdefault("TEST_DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{database}")
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

    _create_database(connection.settings_dict)
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
        for _ in range(workers):
            started.append(celery_worker(env, concurrency=concurrency, pool=worker_pool))
        pools.save_pool(None, name="default", ns_records=[{"hostname": "ns1.bench.test.", "priority": 1}], **pool)
        print(f"pool {pool_kind}: {', '.join(t['name'] for t in pool['targets'])}")
        token = accounts.issue_token(accounts.api_user("bench", "bench"))
        server = LiveServerThread("127.0.0.1", _static_handler(), connections_override={}, port=0)
        server.daemon = True
        server.start()
        server.is_ready.wait()
        started.append(server)
        yield f"http://127.0.0.1:{server.port}", token
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
    parser.add_argument("-c", "--concurrency", type=int, default=8, help="concurrent API clients")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for a phase to settle")
    parser.add_argument("--self-contained", action="store_true")
    parser.add_argument("--pool", choices=["bind9", "mixed", "catalog"], default="bind9",
                        help="with --self-contained: the pool's servers")
    parser.add_argument("--deployment", action="store_true",
                        help="start the production-like deployment (bench/deployment.py) and print CPU per process")
    parser.add_argument("--profile", metavar="DIR", help="with --deployment: py-spy each Python process per phase")
    parser.add_argument("--rate", type=int, default=50, help="py-spy samples per second (with --profile)")
    parser.add_argument("--offered", type=float, metavar="R",
                        help="changes per second offered at a steady rate (an open loop: -c threads make the calls)")
    parser.add_argument("--idle", type=int, default=10, help="single changes timed on the idle system first (0: none)")
    args = parser.parse_args()
    if args.deployment:
        deployment_run(args.n, args.concurrency, args.timeout, args.profile, args.rate, args.idle, args.offered)
    elif args.self_contained:
        self_contained(args.n, args.concurrency, args.timeout, args.pool, args.offered)
    elif not args.token:
        parser.error("--token (or DNSCTL_TOKEN) is required; bin/start prints it")
    else:
        benchmark(args.url, args.token, args.n, args.concurrency, args.timeout, offered=args.offered)


if __name__ == "__main__":
    main()
