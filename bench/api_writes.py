#!/usr/bin/env python
"""The API write path alone: what gunicorn and PostgreSQL spend per zone create, recordset create,
recordset update and zone delete.

    bench/api_writes.py [-n 500] [-c 16] [--rounds 1] [--profile DIR]

Starts a private PostgreSQL, Redis and gunicorn -w 3 as bench/deployment.py does, but no Celery
worker, MiniDNS or DNS server: every change is enqueued and nobody takes it, so PostgreSQL's CPU is
only what the API causes and gunicorn's is not disturbed by a pipeline. Runs the four phases of
bench/propagation.py (N zones, c concurrent clients; --rounds repeats them on new zones) and prints,
per phase, calls/s, the API call's p50/p95, and the CPU milliseconds per call of gunicorn (its
workers), PostgreSQL (its backends), Redis and the bench client. --profile DIR runs py-spy on
gunicorn during each phase and writes DIR/<phase>-gunicorn.txt (collapsed stacks) and
DIR/<phase>-summary.txt. Queries per request are pinned by tests/test_api_queries.py.
"""
import argparse
import os
import sys
import time
import uuid
from concurrent import futures
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.chdir(ROOT)

from bench.deployment import PrivatePostgres, Profiler, _tree_cpu  # noqa: E402
from bench.propagation import Client, percentile  # noqa: E402


class ApiOnly:
    """PostgreSQL, Redis and gunicorn; a default pool with NS records and a member's token."""

    def __init__(self, workers: int = 3):
        self.workers, self.started, self.pids = workers, [], {}

    def start(self):
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self):
        from tests.processes import Process, RedisServer
        from tests.servers import free_port

        pg = PrivatePostgres().start()
        self.started.append(pg)
        self.pids["postgres"] = pg.pid
        redis = RedisServer().start()
        self.started.append(redis)
        self.pids["redis"] = redis.process.proc.pid
        base = redis.url.rsplit("/", 1)[0]
        env = {"DJANGO_SETTINGS_MODULE": "dnsctl.settings", "DATABASE_URL": pg.url, "REDIS_URL": f"{base}/0",
               "COORDINATION_URL": f"{base}/1", "SECRET_KEY": "bench-only-not-a-secret",
               "ALLOWED_HOSTS": "127.0.0.1,localhost", "API_WRITE_RATE": "", "DEBUG": "0",  # DEBUG logs every query
               # No worker marks deleted zones DELETED, so they count as live: a second round of 500 would
               # pass the default 1,000. A large limit, not -1, so that the zone count is still taken.
               "QUOTA_ZONES": "1000000",
               "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING")}
        os.environ.update(env)
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connections

        call_command("migrate", verbosity=0)
        port = free_port(udp_too=False)
        web = Process("web", [sys.executable, "-m", "gunicorn", "dnsctl.wsgi", "-b", f"127.0.0.1:{port}",
                              "-w", str(self.workers)], env).start()
        self.started.append(web)
        web.wait_for(lambda: web.log_text().count("Booting worker") >= self.workers, what="serving")
        self.pids["gunicorn"] = web.proc.pid
        self.url = f"http://127.0.0.1:{port}"

        from zones import accounts
        from zones.services import pools

        pools.save_pool(None, name="default", ns_records=[{"hostname": "ns1.bench.test.", "priority": 1},
                                                          {"hostname": "ns2.bench.test.", "priority": 2}])
        self.token = accounts.issue_token(accounts.api_user("bench", "bench"), expires_in=0)
        connections.close_all()

    def cpu(self) -> dict[str, float]:
        found = {name: _tree_cpu(pid) for name, pid in self.pids.items()}
        import psutil

        me = psutil.Process().cpu_times()
        found["bench client"] = me.user + me.system
        return found

    def stop(self):
        for thing in reversed(self.started):
            try:
                thing.stop()
            except Exception as exc:  # noqa: BLE001
                print(f"stopping {thing!r} failed: {exc!r}", file=sys.stderr)


def phase(stack, client, label, keys, call, concurrency, profiler=None):
    """One call per key from `concurrency` threads; a line of rates, latencies and CPU per call."""
    if profiler:
        profiler.start(label)
    before, times, results = stack.cpu(), [], []
    t0 = time.monotonic()

    def fire(key):
        t = time.monotonic()
        result = call(key)
        times.append(time.monotonic() - t)
        return result

    with futures.ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(fire, keys))
    wall = time.monotonic() - t0
    after = stack.cpu()
    ms = {k: 1000 * (after[k] - before[k]) / len(keys) for k in after}
    print(f"{label:<9} n={len(keys):<4} {len(keys) / wall:6.1f} calls/s  p50 {1000 * percentile(times, 50):6.1f} ms"
          f"  p95 {1000 * percentile(times, 95):6.1f} ms   CPU ms/call: gunicorn {ms['gunicorn']:5.1f}"
          f"  postgres {ms['postgres']:5.1f}  redis {ms['redis']:4.1f}  client {ms['bench client']:4.1f}",
          flush=True)
    if profiler:
        profiler.stop(label)
    return results


def run(n, concurrency, rounds, profile_dir=None, rate=100):
    stack = ApiOnly().start()
    try:
        print(f"API only: PostgreSQL, Redis, gunicorn -w {stack.workers} (no worker: changes are enqueued, never "
              f"taken); {n} zones, {concurrency} clients, {os.cpu_count()} CPUs", flush=True)
        profiler = Profiler(profile_dir, {"gunicorn": stack.pids["gunicorn"]}, rate) if profile_dir else None
        client = Client(stack.url, stack.token)
        for r in range(rounds):
            prefix = f"a{uuid.uuid4().hex[:6]}"
            names = [f"{prefix}-{i}.bench.test." for i in range(n)]
            # Warm every gunicorn worker (imports, connections, token cache) outside the measurement.
            for i in range(3 * stack.workers):
                client.call("POST", "/v2/zones", json={"name": f"{prefix}-warm{i}.bench.test.",
                                                       "email": "bench@bench.test"})
            prof = profiler if r == rounds - 1 else None
            zones = phase(stack, client, "create", names, lambda name: client.call(
                "POST", "/v2/zones", json={"name": name, "email": "bench@bench.test"})["id"], concurrency, prof)
            rsets = dict(zip(zones, phase(stack, client, "rs-create", zones, lambda zid: client.call(
                "POST", f"/v2/zones/{zid}/recordsets",
                json={"name": "www", "type": "A", "records": ["192.0.2.1"]})["id"], concurrency, prof)))
            phase(stack, client, "rs-update", zones, lambda zid: client.call(
                "PUT", f"/v2/zones/{zid}/recordsets/{rsets[zid]}", json={"records": ["192.0.2.2"]}),
                concurrency, prof)
            phase(stack, client, "delete", zones, lambda zid: client.call("DELETE", f"/v2/zones/{zid}"),
                  concurrency, prof)
    finally:
        stack.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=500)
    parser.add_argument("-c", "--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=1, help="repeat the four phases on new zones")
    parser.add_argument("--profile", metavar="DIR", help="py-spy gunicorn during each phase (of the last round)")
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    args = parser.parse_args()
    run(args.n, args.concurrency, args.rounds, args.profile, args.rate)


if __name__ == "__main__":
    main()
