"""MiniDNS's side of zones.transfers: note each SOA query from a pool server, each transfer request
and each transfer's end, and write them to Redis from a thread of their own.

Noting is a dict update under a lock (from the answering threads and the event loop alike); a
writer thread flushes every `interval` seconds in one pipeline. Nothing here ever blocks a query:
when Redis is slow or down, events wait in a bounded buffer and the oldest are dropped.
"""
import itertools
import logging
import threading
import time

log = logging.getLogger(__name__)


class Recorder:
    def __init__(self, ttl: float = 3600, interval: float = 0.2, max_pending: int = 10_000, write=None,
                 soa_every: float = 5.0):
        from zones import transfers

        self.ttl, self.interval, self.max_pending, self.soa_every = ttl, interval, max_pending, soa_every
        self._write = write or (lambda events: transfers.write(events, self.ttl))
        self._pending: list[dict] = []
        self._soa_seen: dict[tuple, float] = {}  # (zone, peer, serial) -> when last noted
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.dropped = 0
        self._complained = 0.0

    # -- noting (any thread) --
    def soa(self, zone_id, peer: str, serial: int):
        """A pool server asked for the zone's SOA: noted once per `soa_every` s per server and serial."""
        key, now = (zone_id, peer, serial), time.time()
        with self._lock:
            if now - self._soa_seen.get(key, 0) < self.soa_every:
                return
            if len(self._soa_seen) > self.max_pending:
                self._soa_seen.clear()
            self._soa_seen[key] = now
        self._add({"zone": zone_id, "peer": peer, "type": "SOA", "serial": serial, "state": "asked", "at": now})

    def transfer(self, zone_id, peer: str, rdtype: str, serial: int, from_serial: int | None, messages):
        """A transfer starts: noted now; the returned iterable of the messages notes its end when
        the transport calls finished()."""
        transfer = Transfer(self, {"zone": zone_id, "peer": peer, "type": rdtype, "serial": serial,
                                   "id": f"{peer}#{next(self._ids)}@{id(self):x}"}, messages)
        self._add({**transfer.event, "from": from_serial, "state": "running", "at": time.time()})
        return transfer

    def _add(self, event):
        with self._lock:
            if len(self._pending) >= self.max_pending:
                self._pending.pop(0)
                self.dropped += 1
            self._pending.append(event)

    # -- the writer thread --
    def start(self):
        self._thread = threading.Thread(target=self._run, name="transfers-writer", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Flush what is left (once) and end the thread."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self):
        while not self._stopping:
            self._wake.wait(self.interval)
            self.flush()
        self.flush()

    def flush(self):
        with self._lock:
            events, self._pending = self._pending, []
        if not events:
            return
        try:
            self._write(events)
        except Exception as exc:  # noqa: BLE001 - Redis down: put them back (bounded) and try later
            with self._lock:
                self._pending = (events + self._pending)[-self.max_pending:]
            if time.monotonic() - self._complained > 60:
                self._complained = time.monotonic()
                log.warning("MiniDNS: cannot record transfers in Redis (kept, bounded): %s", exc)


class Transfer:
    """A transfer's messages (a list or a lazy iterable), and the note of its end."""

    def __init__(self, recorder: Recorder, event: dict, messages):
        self.recorder, self.event, self.messages = recorder, event, messages
        self._ended = False

    def __iter__(self):
        return iter(self.messages)

    def __bool__(self):
        return True

    def __len__(self):
        return len(self.messages)

    def __getitem__(self, index):
        return self.messages[index]

    def finished(self, sent_bytes: int, messages: int, error: str = ""):
        """The last message was written (error ""), or the transfer was cut short (why)."""
        if self._ended:
            return
        self._ended = True
        self.recorder._add({**self.event, "state": "failed" if error else "done", "at": time.time(),
                            "bytes": sent_bytes, "messages": messages, **({"error": error} if error else {})})
