#!/usr/bin/env python
"""A 100,000-record zone: MiniDNS as a primary beside BIND9 serving the same zone, on loopback.

    bench/bigzone.py [-n 100000] [--runs 7] [--py-spy minidns.txt]

Brings up the production-like deployment of bench/deployment.py (private PostgreSQL and Redis,
gunicorn, the Celery worker, beat, MiniDNS, one BIND9 as the pool's target), imports a generated
zone through the API (POST /v2/zones/tasks/imports, timed to COMPLETE), waits until it is ACTIVE on
BIND9, then starts a second BIND9 as a *primary* serving the same records from a zone file (changed
by dynamic update, the incremental path BIND9 has) and prints, side by side:
- the import, from the POST to COMPLETE, and then to ACTIVE on the BIND9 target;
- AXFR, warm (the zone unchanged since the last transfer) and the first after a one-record change:
  medians of --runs, MiniDNS / BIND9, and the time to the first message;
- the IXFR size for a one-record change;
- change -> ACTIVE through the pipeline (MiniDNS, worker, BIND9 target);
- the slowest SOA answer from MiniDNS (the big zone and a small one, asked every 5 ms) while the zone
  is first rendered and transferred, and during the changes;
- MiniDNS's resident memory before the zone and with it cached.
--py-spy FILE records MiniDNS with py-spy (raw format) from the load to the end.

The AXFR client reads length-prefixed messages and counts records from the headers (no parsing), so
it measures the server, not dnspython; both transfers are checked once to hold the same records.
Other processes on the machine skew absolute figures: read the ratios, measured alternately.
"""
import argparse
import os
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.update
import dns.zone

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ZONE, SMALL = "big.bench.test.", "small.bench.test."


# --- the zone --------------------------------------------------------------------------------------


def generate(origin: str, records: int) -> str:
    """A master file of a zone like a big customer's: mostly A, with AAAA, CNAME, MX, TXT and SRV; one
    record per RRset, so `records` RRsets besides the SOA and NS (dnsctl's own, whatever the file says)."""
    kinds = ["A"] * 14 + ["AAAA"] * 2 + ["CNAME", "TXT", "MX", "SRV"]
    lines = [f"$ORIGIN {origin}", "$TTL 3600",
             "@ IN SOA ns1.old-provider.example. hostmaster.bench.test. 1 3600 600 86400 300"]
    for i in range(records):
        kind = kinds[i % len(kinds)]
        owner = f"h{i}.{origin}"
        if kind == "A":
            rdata = f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"
        elif kind == "AAAA":
            rdata = f"2001:db8::{i // 65536:x}:{i % 65536:x}"
        elif kind == "CNAME":
            rdata = f"h{i - 1}.{origin}"
        elif kind == "TXT":
            rdata = f'"v=spf1 ip4:10.{i % 256}.0.0/16 -all"'
        elif kind == "MX":
            rdata = f"10 mx{i % 16}.{origin}"
        else:
            owner = f"_sip._tcp.h{i}.{origin}"
            rdata = f"10 60 5060 h{i - 1}.{origin}"
        lines.append(f"{owner} {'' if i % 3 else 300} IN {kind} {rdata}")
    return "\n".join(lines) + "\n"


def import_zone(api, text: str) -> tuple[str, float, float]:
    """Import the file through the API (the whole zone in one transaction, so its first serial, and
    every target's first transfer, has it all): (zone id, seconds to the 202, seconds to COMPLETE)."""
    started = time.perf_counter()
    task = api.call("POST", "/v2/zones/tasks/imports", data=text.encode(),
                    headers={"Content-Type": "text/dns"}).json()
    accepted = time.perf_counter() - started
    task = api.wait(f"/v2/zones/tasks/imports/{task['id']}")
    if task["status"] != "COMPLETE":
        raise RuntimeError(f"import ended {task['status']}: {task['message']}")
    return task["zone_id"], accepted, time.perf_counter() - started


# --- measuring -------------------------------------------------------------------------------------


def read_exactly(sock, n):
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed mid-transfer")
        data += chunk
    return bytes(data)


def axfr(host, port, zone, expected: int) -> tuple[float, float, int]:
    """(seconds to the whole transfer, seconds to its first message, bytes): records are counted from
    each message's header until `expected` have come."""
    wire = dns.message.make_query(zone, "AXFR").to_wire()
    started = time.perf_counter()
    with socket.create_connection((host, port), timeout=60) as sock:
        sock.sendall(struct.pack("!H", len(wire)) + wire)
        first, seen, size = None, 0, 0
        while seen < expected:
            (length,) = struct.unpack("!H", read_exactly(sock, 2))
            message = read_exactly(sock, length)
            if message[3] & 0xF:
                raise RuntimeError(f"AXFR of {zone} from port {port}: {dns.rcode.to_text(message[3] & 0xF)}")
            first = first or time.perf_counter() - started
            seen += struct.unpack_from("!H", message, 6)[0]
            size += length + 2
    return time.perf_counter() - started, first, size


def records_of(host, port, zone) -> tuple[int, set]:
    """(records in an AXFR, SOA first and last included; the zone's records as text, SOA excluded)."""
    messages = list(dns.query.xfr(host, zone, port=port, lifetime=120, relativize=False))
    count = sum(len(rrset) for message in messages for rrset in message.answer)
    copy = dns.zone.from_xfr(messages, relativize=False)
    texts = {f"{name} {rds.ttl} {rds.to_text(name)}" for name, node in copy.nodes.items() for rds in node
             if rds.rdtype != dns.rdatatype.SOA}
    return count, texts


def ixfr_size(host, port, zone, serial) -> tuple[int, int]:
    """(bytes, records) of the IXFR answer to a secondary at `serial`."""
    query = dns.message.make_query(zone, "IXFR")
    query.authority.append(dns.rrset.from_text(zone, 0, "IN", "SOA", f". . {serial} 0 0 0 0"))
    wire = query.to_wire()
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(struct.pack("!H", len(wire)) + wire)
        size = records = soas = 0
        while True:
            (length,) = struct.unpack("!H", read_exactly(sock, 2))
            message = dns.message.from_wire(read_exactly(sock, length), xfr=True, one_rr_per_rrset=True)
            size += length + 2
            for rrset in message.answer:
                records += len(rrset)
                soas += rrset.rdtype == dns.rdatatype.SOA
            if soas >= 4 or (soas == 2 and records == 2):  # an incremental answer ends with its 4th SOA
                return size, records
            if soas == 2 and message.answer[-1].rdtype == dns.rdatatype.SOA and records > 2:
                return size, records  # AXFR-style


class SoaProbe:
    """A process of its own (so this one's work never delays it) that asks each (host, port, zone) for its
    SOA every `interval` s over UDP and keeps (when, seconds or None); `phase(name)` marks a phase, and
    `report()` gives each phase's slowest answer and 99th percentile per server."""

    def __init__(self, targets, interval=0.005):
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self.marks, self.stop, (self.results, theirs) = [], context.Event(), context.Pipe(duplex=False)
        self.process = context.Process(target=_probe, args=(targets, interval, self.stop, theirs), daemon=True)

    def phase(self, name):
        self.marks.append((time.time(), name))

    def __enter__(self):
        self.process.start()
        return self

    def __exit__(self, *exc):
        self.phase(None)
        self.stop.set()
        self.samples = self.results.recv()
        self.process.join(10)

    def report(self, phase):
        spans = [(start, self.marks[i + 1][0]) for i, (start, name) in enumerate(self.marks[:-1]) if name == phase]
        found = {}
        for label, at, seconds in self.samples:
            if any(start <= at < end for start, end in spans):
                found.setdefault(label, []).append(seconds)
        lines = []
        for label, values in found.items():
            answered = sorted(v for v in values if v is not None)
            lost = len(values) - len(answered)
            p99 = answered[int(0.99 * (len(answered) - 1))] if answered else float("nan")
            slowest = max(answered, default=float("nan"))
            lines.append(f"{label}: slowest {1000 * slowest:.1f} ms, p99 {1000 * p99:.1f} ms, {len(values)} asked"
                         + (f", {lost} unanswered within 1 s" if lost else ""))
        return lines


def _probe(targets, interval, stop, results):
    samples = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1.0)
        while not stop.is_set():
            for label, host, port, zone in targets:
                query = dns.message.make_query(zone, "SOA")
                started, at = time.perf_counter(), time.time()
                sock.sendto(query.to_wire(), (host, port))
                try:
                    while dns.message.from_wire(sock.recv(4096)).id != query.id:
                        pass
                    samples.append((label, at, time.perf_counter() - started))
                except (socket.timeout, dns.exception.DNSException):
                    samples.append((label, at, None))
            time.sleep(interval)
    results.send(samples)


def rss_mb(pid) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_active(zone_id, serial=None, timeout=300, started=None) -> float:
    """Seconds (since `started`, a perf_counter, or now) until the zone is ACTIVE (at `serial` or newer);
    raises on ERROR or timeout."""
    from zones.models import Zone

    started = time.perf_counter() if started is None else started
    while time.perf_counter() - started < timeout:
        zone = Zone.objects.filter(id=zone_id).values("status", "serial", "reason").first() or {}
        if zone.get("status") == "ACTIVE" and (serial is None or zone["serial"] >= serial):
            return time.perf_counter() - started
        if zone.get("status") == "ERROR":
            raise RuntimeError(f"zone went ERROR: {zone.get('reason')}")
        time.sleep(0.01)
    raise RuntimeError(f"zone not ACTIVE after {timeout}s")


def in_process_render(zone_id) -> dict:
    """A MiniDNS in this process renders the zone whole (its CPU time, without the network)."""
    from workers.minidns import MiniDNS
    from zones.models import Zone

    minidns = MiniDNS()
    started = time.thread_time()
    minidns.zone(zone_id, Zone.objects.get(id=zone_id).serial).advance(lambda: False)
    return {"minidns": minidns, "zone_id": zone_id, "full": time.thread_time() - started}


def in_process_next(render) -> float:
    """...and then makes the current serial from the journal's changes since (CPU seconds)."""
    from zones.models import Zone

    minidns, zone_id = render["minidns"], render["zone_id"]
    started = time.thread_time()
    zone = minidns.zone(zone_id, Zone.objects.get(id=zone_id).serial)
    assert zone.complete and minidns.full_renders == 1, "not made from the journal"
    return time.thread_time() - started


def median(values):
    return statistics.median(values) if values else float("nan")


# --- the run ---------------------------------------------------------------------------------------


def run(records: int, runs: int, spy: str | None):
    from bench.deployment import Deployment
    from bench.import_export import Api

    stack = Deployment(extra_env={
        "MINIDNS_ALLOW_XFR_FROM": "127.0.0.1",  # this benchmark transfers from loopback
        "POLL_MAX_RETRIES": os.environ.get("POLL_MAX_RETRIES", "240")})  # the first transfer of a big zone
    started, spy_proc = [stack], None
    try:
        stack.start()  # sets Django up on the deployment's database: the ORM below is that one
        from tests.servers.bind9 import Bind9Server
        from zones.models import RecordSet, Zone
        from zones.services import writes

        host, port, minidns_pid = stack.mhost, stack.mport, stack.pids["minidns"]
        small = writes.create_zone(project_id="bench", name=SMALL, email="hostmaster@bench.test")
        wait_active(small.id)
        rss_before = rss_mb(minidns_pid)
        if spy:
            spy_proc = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "-p",
                                         str(minidns_pid), "-r", "100", "-f", "raw", "-o", spy],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        text = generate(ZONE, records - 2)  # + the SOA and NS dnsctl adds
        targets = [("MiniDNS, the big zone", host, port, ZONE), ("MiniDNS, a small zone", host, port, SMALL),
                   ("BIND9 (the target, for comparison)", *stack.target, SMALL)]
        with SoaProbe(targets) as probe:
            probe.phase("import")
            zone_id, accepted, imported = import_zone(Api(stack.url, stack.token), text)
            probe.phase("first render + transfer")
            active = wait_active(zone_id)
            probe.phase("idle")
            print(f"import of {records:,} records ({len(text.encode()):,} bytes) through the API: 202 in "
                  f"{accepted:.2f}s, COMPLETE {imported:.1f}s after the POST; ACTIVE on BIND9 {active:.1f}s later")

            count, ours = records_of(host, port, ZONE)
            primary = Bind9Server().start()
            started.append(primary)
            zone_file = Path(primary.dir) / "big.zone"
            dns.zone.from_xfr(dns.query.xfr(host, ZONE, port=port, lifetime=120, relativize=False),
                              relativize=False).to_file(
                str(zone_file), relativize=False)
            added = primary.rndc("addzone", ZONE, f'{{ type primary; file "{zone_file}"; allow-transfer {{ any; }}; '
                                                  f'allow-update {{ any; }}; }};')
            assert added.returncode == 0, added.stderr + added.stdout
            theirs_count, theirs = records_of(primary.host, primary.port, ZONE)
            assert (count, ours) == (theirs_count, theirs), "MiniDNS and BIND9 serve different records"
            print(f"both primaries serve the same {count - 1} records")

            render = in_process_render(zone_id)

            probe.phase("warm transfers")
            warm = {"MiniDNS": [], "BIND9": []}
            for _ in range(runs):
                warm["MiniDNS"].append(axfr(host, port, ZONE, count))
                warm["BIND9"].append(axfr(primary.host, primary.port, ZONE, count))

            probe.phase("changes and transfers")
            after = {"MiniDNS": [], "BIND9": []}
            to_active, ixfr = [], None
            for i in range(runs):
                before = Zone.objects.get(id=zone_id).serial
                rs = writes.create_recordset(zone_id, name=f"change{i}", type="A", records=[f"192.0.2.{i + 1}"])
                serial = Zone.objects.get(id=zone_id).serial
                soa = dns.message.make_query(ZONE, "SOA")
                while dns.query.udp(soa, host, port=port, timeout=2).answer[0][0].serial != serial:
                    time.sleep(0.001)  # MiniDNS learns of the commit from PostgreSQL's notice, within a ms or so
                after["MiniDNS"].append(axfr(host, port, ZONE, count + i + 1))
                update = dns.update.UpdateMessage(ZONE)
                update.add(f"change{i}", 300, "A", f"192.0.2.{i + 1}")
                assert dns.query.tcp(update, primary.host, port=primary.port, timeout=10).rcode() == dns.rcode.NOERROR
                after["BIND9"].append(axfr(primary.host, primary.port, ZONE, count + i + 1))
                wait_active(zone_id, serial)
                if ixfr is None:
                    ixfr = ixfr_size(host, port, ZONE, before)
                assert RecordSet.objects.filter(id=rs.id).exists()
            probe.phase("changes -> ACTIVE")  # nothing else in between: the pipeline alone
            for i in range(runs):
                changed = time.perf_counter()
                writes.create_recordset(zone_id, name=f"again{i}", type="A", records=[f"198.51.100.{i + 1}"])
                to_active.append(wait_active(zone_id, Zone.objects.get(id=zone_id).serial, started=changed))
            probe.phase("idle")
        rss_after = rss_mb(minidns_pid)

        print(f"\nAXFR of {count - 1} records, median of {runs} (seconds; first message in ms):")
        for label, results in (("warm", warm), ("first after a change", after)):
            ours, theirs = median([r[0] for r in results["MiniDNS"]]), median([r[0] for r in results["BIND9"]])
            first = {name: 1000 * median([r[1] for r in timings]) for name, timings in results.items()}
            print(f"  {label:<22} MiniDNS {ours:.3f}s (first msg {first['MiniDNS']:.1f} ms)"
                  f"   BIND9 {theirs:.3f}s (first msg {first['BIND9']:.1f} ms)"
                  f"   ratio {ours / theirs:.2f}x")
        print(f"  bytes: MiniDNS {warm['MiniDNS'][0][2]:,}  BIND9 {warm['BIND9'][0][2]:,}")
        print(f"in-process (this thread's CPU): a full render {render['full']:.2f}s; the next serial from the "
              f"journal {1000 * in_process_next(render):.1f} ms")
        print(f"IXFR for a one-record change: {ixfr[0]:,} bytes, {ixfr[1]} records")
        print(f"change -> ACTIVE (BIND9 target): median {median(to_active):.3f}s, max {max(to_active):.3f}s")
        for phase in ("import", "first render + transfer", "warm transfers", "changes and transfers",
                      "changes -> ACTIVE"):
            print(f"SOA answers (every 5 ms) during {phase}:")
            for line in probe.report(phase):
                print(f"  {line}")
        print(f"MiniDNS resident memory: {rss_before:.0f} MB before the zone, {rss_after:.0f} MB with it cached")
    finally:
        if spy_proc is not None:
            spy_proc.send_signal(signal.SIGINT)
            spy_proc.wait(30)
        for proc in reversed(started):
            try:
                proc.stop()
            except Exception as exc:  # noqa: BLE001 - stop the others anyway
                print(f"stopping {proc!r} failed: {exc!r}", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=100_000, help="records in the zone")
    parser.add_argument("--runs", type=int, default=7, help="transfers (and changes) per median")
    parser.add_argument("--py-spy", dest="spy", help="record MiniDNS with py-spy into this file (raw format)")
    args = parser.parse_args()
    run(args.n, args.runs, args.spy)


if __name__ == "__main__":
    main()
