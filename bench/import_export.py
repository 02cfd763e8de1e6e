#!/usr/bin/env python
"""Zone import and export benchmark: a generated zone of N records (default 100,000, ~2.3 MB)
through the real API and a real Celery worker.

Prints: the file's size; a dry run's time (its 202, its task's end); the import from POST to COMPLETE (and the API's 202);
the zone's way to ACTIVE on the pool (MiniDNS → BIND9, reported, not waited for past --active-timeout);
the export from POST to COMPLETE, the GET of its file, and whether the file holds the same records.

    bench/import_export.py --self-contained [-n 100000]    # its own worker, MiniDNS, BIND9, API
    bench/import_export.py --url http://127.0.0.1:8000 --token TOKEN [-n 100000]   # against bin/start

--self-contained runs the integration tests' processes on loopback against the local PostgreSQL
(database dnsctl_bench_imports) and Redis db 14 (TEST_REDIS_URL overrides), and removes everything.
"""
import argparse
import os
import sys
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT))


def generate(origin: str, n: int) -> str:
    """A zone like a large customer's: A, AAAA (own TTL), TXT, MX and CNAME records on distinct names."""
    lines = [f"$ORIGIN {origin}", "$TTL 3600",
             f"@ IN SOA ns1.old-provider.example. hostmaster.{origin} 2024010101 3600 600 86400 300",
             "@ IN NS ns1.old-provider.example.", "@ IN NS ns2.old-provider.example."]
    for i in range(n):
        kind = i % 10
        if kind < 6:
            lines.append(f"host{i} IN A 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
        elif kind < 8:
            lines.append(f"host{i} 300 IN AAAA 2001:db8::{i >> 16:x}:{i & 0xffff:x}")
        elif kind == 8:
            lines.append(f'host{i} IN TXT "v=spf1 ip4:10.0.0.0/8 -all"')
        else:
            lines.append(f"host{i} IN CNAME host{i - 1}")
    return "\n".join(lines) + "\n"


class Api:
    def __init__(self, url, token):
        self.url, self.session = url.rstrip("/"), requests.Session()
        self.session.headers["X-Auth-Token"] = token

    def call(self, method, path, **kw):
        response = self.session.request(method, self.url + path, timeout=600, **kw)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:300]}")
        return response

    def wait(self, path, key="status", until=("COMPLETE", "ERROR"), timeout=600.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.call("GET", path).json()
            if body[key] in until:
                return body
            time.sleep(0.1)
        raise RuntimeError(f"{path} still not {until} after {timeout}s")


def benchmark(url, token, n, active_timeout):
    import dns.zone

    api = Api(url, token)
    origin = f"bench-{uuid.uuid4().hex[:8]}.example."
    text = generate(origin, n)
    print(f"zone file: {n:,} records, {len(text.encode()):,} bytes")
    headers = {"Content-Type": "text/dns"}

    t0 = time.perf_counter()
    task = api.call("POST", "/v2/zones/tasks/imports?dry_run=true", data=text.encode(), headers=headers).json()
    accepted = time.perf_counter() - t0
    plan = api.wait(f"/v2/zones/tasks/imports/{task['id']}")["plan"]
    print(f"dry run: 202 in {accepted:.2f} s, ended {time.perf_counter() - t0:.2f} s after the POST "
          f"(valid={plan['valid']}, {plan['recordsets']:,} recordsets, {plan['records']:,} records)")

    t0 = time.perf_counter()
    task = api.call("POST", "/v2/zones/tasks/imports", data=text.encode(), headers=headers).json()
    accepted = time.perf_counter() - t0
    task = api.wait(f"/v2/zones/tasks/imports/{task['id']}")
    imported = time.perf_counter() - t0
    if task["status"] != "COMPLETE":
        raise SystemExit(f"import ended in {task['status']}: {task['message']}")
    print(f"import: 202 in {accepted:.2f} s, COMPLETE {imported:.2f} s after the POST ({task['message']})")

    zone_id = task["zone_id"]
    try:
        zone = api.wait(f"/v2/zones/{zone_id}", until=("ACTIVE", "ERROR"), timeout=active_timeout)
        print(f"zone {zone['status']} {time.perf_counter() - t0:.2f} s after the POST"
              + (f" ({zone['reason']})" if zone["status"] == "ERROR" else ""))
    except RuntimeError:
        print(f"zone not ACTIVE within {active_timeout:.0f} s of the import (MiniDNS and the pipeline, not the import)")

    t0 = time.perf_counter()
    export = api.call("POST", f"/v2/zones/{zone_id}/tasks/export").json()
    export = api.wait(f"/v2/zones/tasks/exports/{export['id']}")
    exported = time.perf_counter() - t0
    t1 = time.perf_counter()
    body = api.call("GET", f"/v2/zones/tasks/exports/{export['id']}/export", headers={"Accept": "text/dns"}).text
    fetched = time.perf_counter() - t1
    print(f"export: COMPLETE {exported:.2f} s after the POST; file GET {fetched:.2f} s, {len(body.encode()):,} bytes")

    def records(zone_text):
        zone = dns.zone.from_text(zone_text, relativize=False)
        return {(name, rds.rdtype, rds.ttl, rd) for name, node in zone.nodes.items() for rds in node for rd in rds
                if rds.rdtype not in (dns.rdatatype.SOA, dns.rdatatype.NS)}

    same = records(text) == records(body)
    print(f"round trip: the export holds {'the same' if same else 'DIFFERENT'} records as the file (SOA and NS aside)")
    api.call("DELETE", f"/v2/zones/{zone_id}")


def self_contained(n, active_timeout):
    from propagation import loopback_stack

    with loopback_stack("dnsctl_bench_imports") as (url, token):
        benchmark(url, token, n, active_timeout)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("DNSCTL_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--token", default=os.environ.get("DNSCTL_TOKEN"))
    parser.add_argument("-n", type=int, default=100_000, help="records in the zone")
    parser.add_argument("--active-timeout", type=float, default=60, help="seconds to wait for the zone's ACTIVE")
    parser.add_argument("--self-contained", action="store_true")
    args = parser.parse_args()
    if args.self_contained:
        self_contained(args.n, args.active_timeout)
    elif not args.token:
        parser.error("--token (or DNSCTL_TOKEN) is required; bin/start prints it")
    else:
        benchmark(args.url, args.token, args.n, args.active_timeout)


if __name__ == "__main__":
    main()
