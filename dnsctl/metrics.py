"""Prometheus metrics: every dnsctl process counts, GET /metrics (the web) shows them all.

With PROMETHEUS_MULTIPROC_DIR set (bin/start and docker-compose set it, to a directory every
process of the host shares), each process writes its counters and histograms to its own files
there (prometheus-client's multiprocess mode) and a scrape adds them up: the worker's target
actions, MiniDNS's queries and the web's own numbers in one answer. Without it, /metrics shows
only the web process's counters (and the database's numbers, which are read at scrape time).

Counting costs a write into a memory-mapped file; nothing here takes a lock a request or a task
waits for. The numbers read from the database (zones by pool, status and action, the outbox, the
exists sweep, periodic runs) are computed at most every METRICS_DB_CACHE_SECONDS per web process,
each query under a statement timeout. This module imports no Django at load time: MiniDNS's core
imports it too.
"""
import hmac
import itertools
import logging
import os
import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait

import dns.rcode
import dns.rdatatype
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess, values
from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger(__name__)
_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
MULTIPROCESS = bool(_DIR) and os.path.isdir(_DIR) and os.access(_DIR, os.W_OK)
if MULTIPROCESS:
    # One file per process, named by host and pid: containers sharing the directory may reuse pids.
    _host = socket.gethostname().replace("_", "-")
    values.ValueClass = values.MultiProcessValue(lambda: f"{_host}-{os.getpid()}")
else:  # unset, or a process without the directory (a one-off command): count in memory
    values.ValueClass = values.MutexValue

SECONDS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)

CHANGE_SECONDS = Histogram(
    "dnsctl_change_seconds", "Seconds from an accepted change (the zone's write) to its outcome: "
    "ACTIVE, or DELETED for a delete (outcome ok), or ERROR", ["action", "outcome"], buckets=SECONDS)
TARGET_ACTIONS = Counter(
    "dnsctl_target_actions", "Zone actions applied to a target: ok, retry (failed, tried again), "
    "error (failed for good)", ["pool", "target", "outcome"])
NAMESERVER_POLLS = Counter(
    "dnsctl_nameserver_polls", "A nameserver's final poll result per zone: ok (serves the serial), "
    "behind (an older serial, or still serves a deleted zone), error (no answer)", ["nameserver", "outcome"])
PERIODIC_RUNS = Counter(
    "dnsctl_periodic_runs", "Periodic sweeps fired: ran here, or skipped (ran this interval or elsewhere)",
    ["sweep", "outcome"])
PERIODIC_ZONES = Counter(
    "dnsctl_periodic_zones", "Zones handled by periodic sweeps, by the count their summary gives "
    "(zones, pushed, failed, purged)", ["sweep", "count"])
EVENTS_PUBLISHED = Counter(
    "dnsctl_events_published", "Events put on the bus: outbox (create/update/delete) and exists", ["source"])
EXISTS_SHARDS = Counter("dnsctl_exists_shards_swept", "Shards whose exists sweep finished (per producer run)")
MINIDNS_QUERIES = Counter(
    "dnsctl_minidns_queries", "Queries MiniDNS answered, by type (SOA, AXFR, IXFR, other) and rcode",
    ["qtype", "rcode"])
MINIDNS_TRANSFERS = Counter("dnsctl_minidns_transfers", "Zone transfers MiniDNS served (NOERROR)", ["type"])
MINIDNS_REFUSED = Counter("dnsctl_minidns_refused", "Queries MiniDNS refused, by type (not counting the root's "
                          "SOA, which /health asks for)", ["qtype"])
MINIDNS_RENDER_SECONDS = Histogram(
    "dnsctl_minidns_render_seconds", "Seconds to read and render one zone (a cache miss)",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30))

_QTYPES = {dns.rdatatype.SOA: "SOA", dns.rdatatype.AXFR: "AXFR", dns.rdatatype.IXFR: "IXFR"}


def _question(wire: bytes) -> tuple[str, bool]:
    """(type, is the name the root) of the question, read from the wire; the type is a bounded label:
    SOA, AXFR, IXFR or other."""
    try:
        offset = 12
        while wire[offset]:
            if wire[offset] & 0xC0:
                return "other", False
            offset += wire[offset] + 1
        return _QTYPES.get(struct.unpack_from("!H", wire, offset + 1)[0], "other"), offset == 12
    except (IndexError, struct.error):
        return "other", False


def observe_minidns(handle, wire: bytes, peer, tcp: bool):
    """MiniDNS's handle(), counted by question type and rcode. A transfer streaming (a lazy iterable,
    maybe in a noted transfer of workers.transfers) is peeked at: its first message says how it went."""
    answers = handle(wire, peer, tcp)
    messages = getattr(answers, "messages", answers)
    if isinstance(messages, (list, tuple)):
        first = messages[0] if messages else None
    else:
        first = next(iter(messages), None)
        messages = [] if first is None else itertools.chain([first], messages)
        if hasattr(answers, "messages"):
            answers.messages = messages
        else:
            answers = messages
    qtype, root = _question(wire)
    rcode = dns.rcode.to_text(first[3] & 0xF) if first is not None and len(first) >= 4 else "none"
    MINIDNS_QUERIES.labels(qtype, rcode).inc()
    if rcode == "REFUSED" and not root:
        MINIDNS_REFUSED.labels(qtype).inc()
    elif rcode == "NOERROR" and qtype in ("AXFR", "IXFR"):
        MINIDNS_TRANSFERS.labels(qtype).inc()
    return answers


def change_settled(action: str, ok: bool, accepted_at, now):
    CHANGE_SECONDS.labels(action, "ok" if ok else "error").observe(max(0.0, (now - accepted_at).total_seconds()))


# --- what the database says (the web process, at scrape time) --------------------------------------


class DatabaseCollector:
    """Gauges read from the database, at most every METRICS_DB_CACHE_SECONDS. The read runs in a
    thread of its own (with its own connection), and a scrape waits for it at most METRICS_DB_TIMEOUT:
    a database that hangs leaves the last numbers, with dnsctl_metrics_database_up 0, never a
    stuck web worker."""

    def __init__(self):
        self._lock = threading.Lock()
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="metrics-db")
        self._reading = None
        self._at, self._families = -1e9, []

    def collect(self):
        from django.conf import settings

        timeout = settings.METRICS["DB_TIMEOUT"]
        with self._lock:
            if time.monotonic() - self._at >= settings.METRICS["DB_CACHE_SECONDS"]:
                if self._reading is None or self._reading.done():
                    self._reading = self._reader.submit(self._read)
                done, _ = wait([self._reading], timeout=timeout)
                if done:
                    self._families, self._at = self._reading.result(), time.monotonic()
                else:
                    return [self._up(0)] + self._families[1:]
            return list(self._families)

    @staticmethod
    def _up(value):
        up = GaugeMetricFamily("dnsctl_metrics_database_up", "1 if the last read of the database's numbers worked")
        up.add_metric([], value)
        return up

    def _read(self):
        from django.db import close_old_connections

        from zones import overview

        close_old_connections()  # this thread's own connection, kept as CONN_MAX_AGE says
        try:
            numbers = overview.metrics_numbers()
        except Exception as exc:  # noqa: BLE001 - a scrape reports the database down, it never fails
            log.warning("metrics: reading the database failed: %r", exc)
            return [self._up(0)]
        finally:
            close_old_connections()
        up = self._up(1)
        zones = GaugeMetricFamily("dnsctl_zones", "Live zones by pool, status and action",
                                  labels=["pool", "status", "action"])
        for (pool, status, action), count in numbers["zones"].items():
            zones.add_metric([pool, status, action], count)
        oldest = GaugeMetricFamily("dnsctl_oldest_pending_seconds", "Age of the oldest PENDING change, by pool",
                                   labels=["pool"])
        for pool, age in numbers["oldest_pending"].items():
            oldest.add_metric([pool], age)
        backlog = GaugeMetricFamily("dnsctl_outbox_backlog", "Events in the outbox not yet published")
        backlog.add_metric([], numbers["outbox_backlog"])
        lag = GaugeMetricFamily("dnsctl_outbox_lag_seconds", "Age of the oldest unpublished event (0: none)")
        lag.add_metric([], numbers["outbox_lag"])
        shards = GaugeMetricFamily("dnsctl_exists_sweep_shards", "Shards of the current exists period, by state",
                                   labels=["state"])
        for state, count in numbers["exists_shards"].items():
            shards.add_metric([state], count)
        last = GaugeMetricFamily("dnsctl_periodic_last_run_timestamp_seconds",
                                 "When each periodic sweep last started (unix time)", labels=["sweep"])
        duration = GaugeMetricFamily("dnsctl_periodic_last_run_duration_seconds",
                                     "How long each periodic sweep's last finished run took", labels=["sweep"])
        for run in numbers["periodic"]:
            if run["started_at"]:
                last.add_metric([run["name"]], run["started_at"].timestamp())
            if run["started_at"] and run["finished_at"]:
                duration.add_metric([run["name"]], (run["finished_at"] - run["started_at"]).total_seconds())
        return [up, zones, oldest, backlog, lag, shards, last, duration]


_scrape = {"registry": None}
_scrape_lock = threading.Lock()


def registry():
    """What /metrics shows: every process's files (multiprocess mode) or this process's metrics, and
    the database's numbers."""
    with _scrape_lock:
        if _scrape["registry"] is None:
            if MULTIPROCESS:
                found = CollectorRegistry()
                multiprocess.MultiProcessCollector(found)
            else:
                found = REGISTRY
            found.register(DatabaseCollector())
            _scrape["registry"] = found
        return _scrape["registry"]


def metrics_view(request):
    """GET /metrics in Prometheus's text format. With METRICS_TOKEN set, it needs
    `Authorization: Bearer <token>` (Prometheus's `authorization` / `bearer_token`)."""
    from django.conf import settings
    from django.http import HttpResponse, JsonResponse

    token = settings.METRICS["TOKEN"]
    if token and not hmac.compare_digest(request.headers.get("Authorization", "").encode(),
                                         f"Bearer {token}".encode()):
        return JsonResponse({"code": 401, "type": "unauthorized", "message": "A valid metrics token is required."},
                            status=401)
    if request.method not in ("GET", "HEAD"):
        return JsonResponse({"code": 405, "type": "method_not_allowed", "message": "Use GET."}, status=405)
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
