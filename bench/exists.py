#!/usr/bin/env python
"""Exists sweep benchmark: one sweep of N zones with 1, 2 and 4 producers, a consumer draining the bus.

    bench/exists.py [-n 1000000] [--producers 1 2 4] [--batch 1000]

Bulk-loads N zones (through the model layer, which fills the shards) into its own PostgreSQL
database (--database, default dnsctl_exists_bench, created and migrated if missing; the zones are
kept for the next run) and uses its own Redis db (--redis, default db 9). For each producer count
it clears the sweep progress and the stream, starts the producers (`manage.py producer`), and a
consumer group reads and acknowledges every event until it has seen one per live zone. It prints
events/s and wall time (from starting the producers to the last event read) and each producer's
peak memory (VmHWM) and the 1-minute load average at the end (the machine may be shared), then
stops what it started.
"""
import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DESIGN_TARGET = 5_000_000 / 3600  # Designate: five million zones an hour


def setup(args):
    import psycopg2
    from urllib.parse import urlsplit

    url = urlsplit(args.database)
    admin = psycopg2.connect(host=url.hostname, port=url.port or 5432, user=url.username or "postgres",
                             dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [url.path.lstrip("/")])
        if cursor.fetchone() is None:
            cursor.execute(f'CREATE DATABASE "{url.path.lstrip("/")}"')
    admin.close()
    os.environ.update(DJANGO_SETTINGS_MODULE="dnsctl.settings", DATABASE_URL=args.database, REDIS_URL=args.redis,
                      EVENTS_STREAM=args.stream, LOG_LEVEL="WARNING")
    os.environ.setdefault("SECRET_KEY", "bench-only-not-a-secret")  # it and its producers need one
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def load_zones(n: int) -> int:
    from zones.models import Pool, Zone
    from zones.services import pools

    pool = Pool.objects.filter(name="bench").first() or pools.save_pool(None, name="bench")
    have = Zone.objects.filter(deleted_at__isnull=True).count()
    started = time.monotonic()
    for start in range(have, n, 20_000):
        Zone.objects.bulk_create([Zone(name=f"z{i}.bench.example.", email="hostmaster@bench.example",
                                       project_id=f"p{i % 100}", pool=pool)
                                  for i in range(start, min(n, start + 20_000))])
    if have < n:
        print(f"loaded {n - have} zones in {time.monotonic() - started:.1f} s")
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("ANALYZE zones_zone")
    return Zone.objects.filter(deleted_at__isnull=True).count()


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(producers: int, zones: int, args) -> dict:
    from workers.producer import EventBus
    from zones.models import ExistsSweep

    ExistsSweep.objects.all().delete()
    bus = EventBus(args.redis, args.stream)
    bus.redis.delete(args.stream)
    bus.create_group("bench", "$")
    coordination = f"{args.redis}?membership_timeout=5"
    env = {**os.environ, "COORDINATION_URL": coordination, "EXISTS_INTERVAL": "86400",
           "EXISTS_BATCH_SIZE": str(args.batch), "PRODUCER_GROUP": f"bench-{os.getpid()}-{producers}"}
    logs = [tempfile.TemporaryFile() for _ in range(producers)]
    started = time.monotonic()
    procs = [subprocess.Popen([sys.executable, "manage.py", "producer"], cwd=ROOT, env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True) for log in logs]
    seen, peaks = set(), {}
    try:
        while len(seen) < zones:
            for proc in procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"a producer exited with {proc.returncode}")
                peaks[proc.pid] = peak_mb(proc.pid)
            entries = bus.take("bench", "counter", count=5000, block_ms=1000)
            if entries:
                seen.update(event["event_id"] for _, event in entries)
                bus.ack("bench", [entry_id for entry_id, _ in entries])
                bus.redis.xtrim(args.stream, minid=entries[-1][0])  # read and acknowledged: free the memory
        wall = time.monotonic() - started
        peaks = {pid: peak_mb(pid) for pid in peaks}
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc, log in zip(procs, logs):
            proc.wait(30)
            log.close()
        bus.redis.delete(args.stream)
    return {"events": len(seen), "wall": wall, "peaks": sorted(peaks.values())}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=1_000_000, help="live zones")
    parser.add_argument("--producers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--batch", type=int, default=1000, help="EXISTS_BATCH_SIZE")
    parser.add_argument("--database", default="postgres://postgres@127.0.0.1:5432/dnsctl_exists_bench")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--stream", default="bench:events")
    args = parser.parse_args()
    os.chdir(ROOT)
    setup(args)
    zones = load_zones(args.n)
    print(f"{zones} live zones, batch {args.batch}, {os.cpu_count()} cores")
    print("| producers | events | wall time | events/s | x Designate's 5M/h | peak MB per producer | load avg |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for producers in args.producers:
        r = run(producers, zones, args)
        rate = r["events"] / r["wall"]
        print(f"| {producers} | {r['events']} | {r['wall']:.1f} s | {rate:,.0f} | {rate / DESIGN_TARGET:.1f} | "
              f"{', '.join(f'{p:.0f}' for p in r['peaks'])} | {os.getloadavg()[0]:.1f} |", flush=True)
    print(f"Designate's design target, 5M zones an hour, is {DESIGN_TARGET:,.0f} events/s.")


if __name__ == "__main__":
    main()
