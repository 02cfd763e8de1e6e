"""The event bus (a Redis Stream), the outbox relay, and the exists producer.

Why a Redis Stream: it is a durable, trimmed log that consumer groups read from where they stopped
(XREADGROUP + XACK; unacknowledged entries are handed back after a crash), it lives on the Redis
dnsctl already runs, and pipelined XADD appends ~78,000 events/s per process where kombu's
one-at-a-time publishing manages ~2,200: the exists sweep of millions of zones needs the former.
"""
import json
import logging
import threading
import time

import redis
from django.conf import settings
from django.db import DatabaseError, close_old_connections

from dnsctl import metrics
from workers import coordination
from workers.partitioner import Partitioner
from zones import events

log = logging.getLogger(__name__)


class EventBus:
    """Appends events to the stream and reads them back through consumer groups."""

    def __init__(self, url: str | None = None, stream: str | None = None):
        self.redis = redis.Redis.from_url(url or settings.EVENTS["URL"], socket_timeout=10, socket_connect_timeout=2)
        self.stream = stream or settings.EVENTS["STREAM"]

    def publish(self, batch: list[dict]):
        """Append the events in order, in one round trip; raises redis.RedisError if the bus is down."""
        if not batch:
            return
        with self.redis.pipeline(transaction=False) as pipe:
            for event in batch:
                pipe.xadd(self.stream, {"type": event["event_type"], "event": json.dumps(event, separators=(",", ":"))})
            pipe.execute()

    def trim(self, older_than: float) -> int:
        """Drop entries older than `older_than` seconds (stream ids start with their time in ms)."""
        return self.redis.xtrim(self.stream, minid=f"{int((time.time() - older_than) * 1000)}-0", approximate=False)

    def create_group(self, group: str, start: str = "0"):
        """A consumer group reading from `start` ("0": everything kept, "$": from now on); idempotent."""
        try:
            self.redis.xgroup_create(self.stream, group, id=start, mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def take(self, group: str, consumer: str, count: int = 1000, block_ms: int = 1000) -> list[tuple[bytes, dict]]:
        """This consumer's entries not yet acknowledged (it stopped before XACK) first, then new ones."""
        for start, block in (("0", None), (">", block_ms)):
            reply = self.redis.xreadgroup(group, consumer, {self.stream: start}, count=count, block=block)
            entries = reply[0][1] if reply else []
            if entries:
                # An entry trimmed while pending comes back without fields: nothing left to read.
                return [(entry_id, json.loads(fields[b"event"]) if fields else None) for entry_id, fields in entries]
        return []

    def ack(self, group: str, entry_ids: list[bytes]):
        if entry_ids:
            self.redis.xack(self.stream, group, *entry_ids)


def relay_outbox(bus: EventBus, batch_size: int) -> int:
    """Publish every waiting outbox event, oldest first; raises (and keeps them waiting) if the bus is down."""
    total = 0
    while sent := events.publish_outbox(bus.publish, batch_size):
        total += sent
    return total


class Producer:
    """Sweeps this member's shards once per period, re-reading the group as it goes."""

    MAX_SHARDS_PER_BATCH = 512

    def __init__(self, partitioner: Partitioner, bus: EventBus, interval: float, batch_size: int, tick: float):
        self.partitioner, self.bus = partitioner, bus
        self.interval, self.batch_size, self.tick = interval, batch_size, tick
        self.zones_read = self.shards_finished = 0  # how dense the shards are: how many to ask for at once
        self.idle_at = None  # (period, shards) last found all done: no need to ask the database again

    @classmethod
    def from_settings(cls) -> "Producer":
        conf = settings.EVENTS
        partitioner = Partitioner(coordination.get_coordinator(), coordination.my_member_id(), conf["PRODUCER_GROUP"])
        return cls(partitioner, EventBus(), conf["EXISTS_INTERVAL"], conf["EXISTS_BATCH_SIZE"], conf["PRODUCER_TICK"])

    def run(self, stopping: threading.Event):
        self.partitioner.join()
        log.info("producer %s joined; exists every %ss", self.partitioner.member, self.interval)
        try:
            while not stopping.is_set():
                close_old_connections()  # like a request boundary: drop a connection broken by an outage
                try:
                    busy = self.sweep(stopping)
                except (DatabaseError, redis.RedisError) as exc:
                    log.warning("sweep interrupted, retrying: %s", exc)
                    busy = False
                if not busy:
                    stopping.wait(self.tick)
        finally:
            self.partitioner.leave()

    def shards_per_batch(self) -> int:
        """About batch_size zones' worth of shards, judged from the shards swept so far."""
        if not self.shards_finished:
            return 1
        per_shard = max(self.zones_read / self.shards_finished, 1 / self.MAX_SHARDS_PER_BATCH)
        return max(1, min(self.MAX_SHARDS_PER_BATCH, int(self.batch_size / per_shard)))

    def sweep(self, stopping: threading.Event) -> bool:
        """Work through this period's shards that are mine and not done; False if there was nothing to do.

        The group is re-read every tick, so shards move as soon as a member joins, leaves or stops
        heartbeating, and a producer cut off from coordination stops after the batch in hand.
        """
        period = events.period_of(time.time(), self.interval)
        mine, checked = self.partitioner.my_shards(), time.monotonic()
        if self.idle_at == (period, mine):
            return False
        pending, skipped, worked = sorted(events.prepare_sweep(period, mine)), set(), False
        while pending and not stopping.is_set() and events.period_of(time.time(), self.interval) == period:
            if time.monotonic() - checked > self.tick:
                if self.partitioner.my_shards() != mine:
                    return True  # re-split: start again from the new share (it may have gained shards)
                checked = time.monotonic()
            asked = pending[: self.shards_per_batch()]
            locked, finished, zones = events.sweep_batch(period, asked, self.interval, self.batch_size,
                                                         self.bus.publish, self.partitioner.member)
            self.zones_read, self.shards_finished = self.zones_read + zones, self.shards_finished + len(finished)
            metrics.EVENTS_PUBLISHED.labels("exists").inc(zones)
            metrics.EXISTS_SHARDS.inc(len(finished))
            worked |= bool(locked)
            # Finished shards are off the list, and so are those another producer holds for now (a
            # later sweep tries them again); a partly swept shard stays first.
            skipped |= set(asked) - set(locked)
            pending = [s for s in pending if s not in skipped and s not in finished]
        self.idle_at = None if pending or skipped else (period, mine)
        return worked
