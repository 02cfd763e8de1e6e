#!/usr/bin/env python
"""MiniDNS's CPU per change, alone: what bench/propagation.py --deployment shows in its `minidns` row, in a
few seconds and without the rest of the pipeline.

Starts MiniDNS (manage.py minidns) against a database of its own on the local PostgreSQL (dnsctl_bench_minidns,
or TEST_DATABASE_URL) and plays, for N small zones, what BIND9 does after each change:

    create   the zone is written (SOA, NS); an SOA query over UDP, then an AXFR over TCP
    update   a recordset is added (one A); an SOA query over UDP, then an IXFR over TCP from the previous serial

(the changes are written in this process, through zones.services; nothing is sent to Celery). Prints the CPU
milliseconds per change of the MiniDNS process, per phase, and checks every answer.

    bench/minidns_changes.py [-n 500] [--delay 0.05] [--profile DIR]

--profile DIR runs py-spy on MiniDNS during each phase and writes DIR/<phase>-minidns.txt (collapsed stacks)
and DIR/<phase>-summary.txt, as bench/propagation.py does.
"""
import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.chdir(ROOT)


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of the process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / os.sysconf("SC_CLK_TCK"), int(fields[12]) / os.sysconf("SC_CLK_TCK")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=500)
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--delay", type=float, default=0.05,
                        help="seconds from a change's commit to the SOA query (the pipeline's NOTIFY comes later)")
    args = parser.parse_args()

    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    os.environ.setdefault("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dnsctl_bench_minidns")
    os.environ.setdefault("TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
    import django

    django.setup()
    import dns.message
    import dns.query
    import dns.rcode
    import dns.rrset
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from bench.deployment import Profiler
    from bench.propagation import _create_database
    from tests.processes import minidns
    from tests.servers import free_port
    from zones.models import Zone
    from zones.services import pools, writes

    _create_database(connection.settings_dict)
    call_command("migrate", verbosity=0)
    call_command("flush", interactive=False, verbosity=0)
    writes._enqueue = lambda zone: None  # no pipeline: this measures MiniDNS alone
    pools.save_pool(None, name="default", ns_records=[{"hostname": "ns1.bench.test.", "priority": 1}],
                    nameservers=[{"host": "127.0.0.1", "port": 53}])  # loopback may transfer
    env = {"DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": os.environ["TEST_DATABASE_URL"],
           "REDIS_URL": settings.REDIS_URL, "CONN_MAX_AGE": "300", "LOG_LEVEL": "WARNING"}
    host, port = "127.0.0.1", free_port()
    server = minidns(env, host, port)
    pid = server.proc.pid
    time.sleep(1.0)  # the listener is up

    def soa_serial(name):
        query = dns.message.make_query(name, "SOA", use_edns=0, payload=1232)  # with an OPT, as BIND9 asks
        answer = dns.query.udp(query, host, port=port, timeout=2)
        assert answer.rcode() == dns.rcode.NOERROR, answer
        return answer.answer[0][0].serial

    def transfer(name, serial=None):
        query = dns.message.make_query(name, "IXFR" if serial else "AXFR")
        if serial:
            query.authority.append(dns.rrset.from_text(name, 0, "IN", "SOA", f". . {serial} 0 0 0 0"))
        answer = dns.query.tcp(query, host, port=port, timeout=5, one_rr_per_rrset=True)
        assert answer.rcode() == dns.rcode.NOERROR and answer.answer, answer
        return answer

    profiler = Profiler(str(args.profile), {"minidns": pid}, rate=100) if args.profile else None

    def phase(label, change):
        if profiler is not None:
            profiler.start(label)
        before, started = cpu_seconds(pid), time.perf_counter()
        for i in range(args.n):
            change(i)
        wall, (user, system) = time.perf_counter() - started, (b - a for a, b in zip(before, cpu_seconds(pid)))
        if profiler is not None:
            profiler.stop(label)
        print(f"{label:7s} n={args.n}  MiniDNS CPU {user + system:6.2f} s  {(user + system) / args.n * 1000:5.2f} "
              f"ms/change ({system / args.n * 1000:4.2f} of it in the kernel)   "
              f"{args.n / wall:5.1f} changes/s, one at a time")

    zones = []

    def create(i):
        zone = writes.create_zone(project_id="bench", name=f"z{i}.bench.test.", email="admin@bench.test")
        zones.append(zone.id)
        time.sleep(args.delay)
        assert soa_serial(zone.name) == Zone.objects.get(id=zone.id).serial
        transfer(zone.name)

    def update(i):
        zone = Zone.objects.get(id=zones[i])
        writes.create_recordset(zone.id, name=f"r{i}", type="A", records=["192.0.2.2"])
        serial = Zone.objects.get(id=zone.id).serial
        time.sleep(args.delay)
        while soa_serial(zone.name) != serial:  # BIND9 asks after our NOTIFY, when the change has committed
            time.sleep(0.001)
        answer = transfer(zone.name, zone.serial)
        assert answer.answer[0][0].serial == serial and answer.answer[1][0].serial == zone.serial  # incremental

    try:
        before = sum(cpu_seconds(pid))
        time.sleep(5)
        print(f"idle    MiniDNS CPU {(sum(cpu_seconds(pid)) - before) / 5 * 1000:5.1f} ms/s")
        phase("create", create)
        phase("update", update)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
