"""A minimal threaded dnspython primary, a stand-in for MiniDNS in helper tests.

Serves, for an in-memory dict of zone name -> serial:
- SOA (and the few A/NS records) over UDP and TCP, with AA;
- AXFR, and IXFR answered AXFR-style (BIND accepts that), over TCP;
- REFUSED for names outside every zone.
Change a serial with ``set_serial`` and the next transfer serves it.
"""

import socket
import socketserver
import struct
import threading

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from tests.servers import free_port


class TinyPrimary:
    def __init__(self, zones: dict[str, int] | None = None, host: str = "127.0.0.1"):
        self.host = host
        self.port: int | None = None
        self._zones: dict[dns.name.Name, int] = {}
        self._lock = threading.Lock()
        self._servers: list[socketserver.BaseServer] = []
        self._threads: list[threading.Thread] = []
        for name, serial in (zones or {}).items():
            self.set_serial(name, serial)

    # -- zone data -----------------------------------------------------
    def set_serial(self, zone_name: str, serial: int) -> None:
        """Add the zone or change its serial."""
        with self._lock:
            self._zones[dns.name.from_text(zone_name)] = serial

    def remove_zone(self, zone_name: str) -> None:
        with self._lock:
            self._zones.pop(dns.name.from_text(zone_name), None)

    def serial(self, zone_name: str) -> int:
        with self._lock:
            return self._zones[dns.name.from_text(zone_name)]

    def _records(self, origin: dns.name.Name, serial: int) -> list[dns.rrset.RRset]:
        """SOA first; then NS and two A records (enough to look like a zone)."""
        ns = dns.name.from_text("ns1", origin)
        soa = dns.rrset.from_text(origin, 300, "IN", "SOA",
                                  f"{ns} hostmaster.{origin} {serial} 3600 600 86400 300")
        return [
            soa,
            dns.rrset.from_text(origin, 300, "IN", "NS", str(ns)),
            dns.rrset.from_text(ns, 300, "IN", "A", "192.0.2.1"),
            dns.rrset.from_text(dns.name.from_text("www", origin), 300, "IN", "A", "192.0.2.2"),
        ]

    def _zone_for(self, qname: dns.name.Name):
        with self._lock:
            for origin, serial in self._zones.items():
                if qname.is_subdomain(origin):
                    return origin, serial
        return None, None

    # -- protocol ------------------------------------------------------
    def answer(self, query: dns.message.Message, tcp: bool) -> dns.message.Message:
        response = dns.message.make_response(query)
        if not query.question:
            response.set_rcode(dns.rcode.FORMERR)
            return response
        question = query.question[0]
        origin, serial = self._zone_for(question.name)
        if origin is None:
            response.set_rcode(dns.rcode.REFUSED)
            return response
        response.flags |= dns.flags.AA
        records = self._records(origin, serial)
        if question.rdtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR):
            if not tcp or question.name != origin:
                response.set_rcode(dns.rcode.REFUSED)
                return response
            response.answer = records + [records[0]]
            return response
        for rrset in records:
            if rrset.name == question.name and rrset.rdtype == question.rdtype:
                response.answer.append(rrset)
        if not response.answer:
            response.authority.append(records[0])
            if not any(r.name == question.name for r in records):
                response.set_rcode(dns.rcode.NXDOMAIN)
        return response

    # -- lifecycle -----------------------------------------------------
    def start(self) -> "TinyPrimary":
        primary = self

        class UDPHandler(socketserver.BaseRequestHandler):
            def handle(self):
                data, sock = self.request
                try:
                    query = dns.message.from_wire(data)
                except Exception:
                    return
                sock.sendto(primary.answer(query, tcp=False).to_wire(), self.client_address)

        class TCPHandler(socketserver.BaseRequestHandler):
            def handle(self):
                sock = self.request
                sock.settimeout(10)
                try:
                    while True:
                        header = _recv_exactly(sock, 2)
                        if header is None:
                            return
                        data = _recv_exactly(sock, struct.unpack("!H", header)[0])
                        if data is None:
                            return
                        wire = primary.answer(dns.message.from_wire(data), tcp=True).to_wire()
                        sock.sendall(struct.pack("!H", len(wire)) + wire)
                except (OSError, dns.exception.DNSException):
                    return

        class UDPServer(socketserver.ThreadingUDPServer):
            daemon_threads = True

        class TCPServer(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 1024  # secondaries open many XFR connections at once

        for _ in range(20):
            port = self.port or free_port()
            try:
                tcp_server = TCPServer((self.host, port), TCPHandler)
            except OSError:
                if self.port:
                    raise
                continue
            try:
                udp_server = UDPServer((self.host, port), UDPHandler)
            except OSError:
                tcp_server.server_close()
                if self.port:
                    raise
                continue
            break
        else:
            raise RuntimeError("TinyPrimary: no free port")
        self.port = port
        self._servers = [udp_server, tcp_server]
        self._threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.1},
                                          daemon=True) for s in self._servers]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers, self._threads = [], []

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def __enter__(self) -> "TinyPrimary":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _recv_exactly(sock: socket.socket, count: int) -> bytes | None:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            return None
        data += chunk
    return data
