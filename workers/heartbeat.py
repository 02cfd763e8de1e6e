"""Heartbeats of the worker and beat processes, so /health knows, not guesses, that they run.

Each live process writes its name and the time into a Redis sorted set (REDIS_URL) every
HEARTBEAT_INTERVAL seconds; /health reads the newest entries. A worker beats only while its
consumer is connected and taking tasks (a Celery consumer bootstep), and removes itself when it
stops; beat beats from its scheduler's tick, which runs at least every CELERY_BEAT_MAX_LOOP_INTERVAL s.
"""
import logging
import os
import socket
import time

import redis
from celery import bootsteps
from celery.beat import PersistentScheduler
from django.conf import settings

log = logging.getLogger(__name__)
KEYS = {"worker": "dnsctl:heartbeat:worker", "beat": "dnsctl:heartbeat:beat"}
FORGET_AFTER = 3600  # entries older than this are dropped on the next beat
_clients: dict[str, redis.Redis] = {}


def _redis(timeout: float = 1.0) -> redis.Redis:
    url = settings.REDIS_URL
    if url not in _clients:
        _clients[url] = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    return _clients[url]


def beat(kind: str, member: str):
    """Record that `member` of `kind` is alive now."""
    now = time.time()
    with _redis().pipeline(transaction=False) as pipe:
        pipe.zadd(KEYS[kind], {member: now})
        pipe.zremrangebyscore(KEYS[kind], "-inf", now - FORGET_AFTER)
        pipe.execute()


def gone(kind: str, member: str):
    _redis().zrem(KEYS[kind], member)


def newest(kind: str, max_age: float, client: redis.Redis | None = None) -> list[float]:
    """Ages (seconds, newest first) of the members of `kind` that beat in the last max_age seconds."""
    now = time.time()
    scores = (client or _redis()).zrevrangebyscore(KEYS[kind], "+inf", now - max_age, withscores=True)
    return [max(0.0, now - score) for _, score in scores]


def _interval() -> float:
    return settings.HEALTH["HEARTBEAT_INTERVAL"]


class WorkerHeartbeat(bootsteps.StartStopStep):
    """A consumer step: beats while the consumer runs (it is stopped and started again around a
    lost broker connection), and says goodbye when the worker stops."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, consumer, **kwargs):
        super().__init__(consumer, **kwargs)
        self.timer_ref = None

    def start(self, consumer):
        self.member = consumer.hostname
        self._beat()
        self.timer_ref = consumer.timer.call_repeatedly(_interval(), self._beat)

    def stop(self, consumer):
        if self.timer_ref is not None:
            self.timer_ref.cancel()
            self.timer_ref = None
        try:
            gone("worker", self.member)
        except redis.RedisError as exc:
            log.debug("could not remove the worker heartbeat: %s", exc)

    shutdown = stop

    def _beat(self):
        try:
            beat("worker", self.member)
        except redis.RedisError as exc:
            log.debug("worker heartbeat not written: %s", exc)


class BeatScheduler(PersistentScheduler):
    """Celery's default scheduler that also beats (at most every HEARTBEAT_INTERVAL s)."""

    def __init__(self, *args, **kwargs):
        self.member, self.last_beat = f"{socket.gethostname()}-{os.getpid()}", 0.0
        super().__init__(*args, **kwargs)

    def tick(self, *args, **kwargs):
        now = time.monotonic()
        if now - self.last_beat >= _interval():
            self.last_beat = now
            try:
                beat("beat", self.member)
            except redis.RedisError as exc:
                log.debug("beat heartbeat not written: %s", exc)
        return super().tick(*args, **kwargs)

    def close(self):
        try:
            gone("beat", self.member)
        except redis.RedisError as exc:
            log.debug("could not remove the beat heartbeat: %s", exc)
        super().close()
