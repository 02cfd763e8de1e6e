#!/usr/bin/env python
"""MiniDNS under a burst of garbage: are the valid queries among it all answered?

    bench/minidns_flood.py [-n 20000] [--every 100] [--buffer 4194304] [--rounds 3]

Starts MiniDNS (workers.minidns.serve, in this process, zones from a dict: no database) on
127.0.0.1, then sends N garbage datagrams as fast as one socket can (random bytes, and headers that
promise a question they do not hold), with one SOA query after every `--every` of them from a second
socket. Prints, per round, the valid queries answered, the datagrams the server's socket dropped
(the kernel's per-socket count, /proc/net/udp), the garbage turned away on the loop, the receive
buffer granted and the 1-minute load average (the machine may be shared).
"""
import argparse
import asyncio
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def garbage(n):
    return [os.urandom(12 + i % 60) if i % 2 else
            struct.pack("!HHHHHH", i & 0xFFFF, 0x0100, 1, 0, 0, 0) + b"\x3fabc" for i in range(n)]


def drops(port):
    for line in open("/proc/net/udp"):
        fields = line.split()
        if fields[1].endswith(":%04X" % port):
            return int(fields[-1])
    return None


class Source:
    def find(self, names):
        return {n: (n, 7) for n in names if n == "flood.test."}

    def records(self, zone_id):
        return zone_id, [(zone_id, "SOA", 300, [f"ns1.{zone_id} h.{zone_id} 7 3600 600 86400 300"]),
                         (zone_id, "NS", 300, [f"ns1.{zone_id}"])]

    def xfr_hosts(self):
        return []

    def pool_of(self, zone_id):
        return None

    def ixfr(self, *args):
        return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20000)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--buffer", type=int, default=4 * 1024 * 1024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import django
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dnsctl.settings")
    os.environ.setdefault("DEBUG", "1")
    django.setup()
    import dns.message

    from workers.minidns import MiniDNS, serve

    bound, limits, stop, loop = {}, {}, None, None
    ready = threading.Event()

    async def run():
        nonlocal stop, loop
        stop, loop = asyncio.Event(), asyncio.get_running_loop()
        await serve("127.0.0.1", 0, MiniDNS(Source()), workers=4, udp_buffer=args.buffer, limits=limits, stop=stop,
                    ready=lambda h, p: (bound.update(port=p), ready.set()))

    thread = threading.Thread(target=lambda: asyncio.run(run()))
    thread.start()
    ready.wait(10)
    port = bound["port"]
    junk = garbage(args.n)
    for round_ in range(args.rounds):
        before, turned_away = drops(port), limits["udp"].garbage
        sock, flood = (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2))
        sock.settimeout(3)
        valid, started = set(), time.perf_counter()
        for i, packet in enumerate(junk):
            flood.sendto(packet, ("127.0.0.1", port))
            if i % args.every == 0:
                query = dns.message.make_query("flood.test.", "SOA")
                valid.add(query.id)
                sock.sendto(query.to_wire(), ("127.0.0.1", port))
        sent = time.perf_counter() - started
        answered = set()
        try:
            while answered != valid:
                wire, _ = sock.recvfrom(65535)
                answered.add(struct.unpack("!H", wire[:2])[0])
        except socket.timeout:
            pass
        sock.close()
        flood.close()
        print(f"round {round_ + 1}: {len(answered & valid)}/{len(valid)} valid answered; {args.n} garbage sent in "
              f"{sent:.2f} s; server socket dropped {drops(port) - before}; turned away on the loop "
              f"{limits['udp'].garbage - turned_away}; receive buffer {limits['udp_buffer']} B; "
              f"load {os.getloadavg()[0]:.1f}")
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)


if __name__ == "__main__":
    main()
