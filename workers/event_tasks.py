"""Celery tasks for zone events (thin): the outbox relay and the trimming of old events."""
import logging
import time

import redis
from celery import shared_task
from django.conf import settings
from tooz import coordination as tooz_coordination

from dnsctl import metrics
from workers import coordination
from workers.producer import EventBus, relay_outbox
from zones import events

log = logging.getLogger(__name__)


_buses: dict[tuple, EventBus] = {}


def _bus() -> EventBus:
    """The process's EventBus for the configured stream: its connection is kept between relays (a new
    client each second opened a Redis connection each second)."""
    key = (settings.EVENTS["URL"], settings.EVENTS["STREAM"])
    if key not in _buses:
        _buses[key] = EventBus(*key)
    return _buses[key]


@shared_task(ignore_result=True)
def relay_events() -> int:
    """Publish the outbox; one relay at a time (publish order is the events' order). While the bus
    is down the events stay in the outbox and the next beat tick tries again."""
    try:
        with coordination.lock("events-relay", blocking=False) as mine:
            sent = relay_outbox(_bus(), settings.EVENTS["RELAY_BATCH_SIZE"]) if mine else 0
        metrics.EVENTS_PUBLISHED.labels("outbox").inc(sent)
        return sent
    except (redis.RedisError, tooz_coordination.ToozError) as exc:
        log.warning("events wait in the outbox, the bus is unreachable: %s", exc)
        return 0


@shared_task(ignore_result=True)
def trim_events() -> dict:
    """Drop outbox rows and stream entries past their retention, and sweep progress of past periods."""
    conf = settings.EVENTS
    current = events.period_of(time.time(), conf["EXISTS_INTERVAL"])
    return {
        "outbox": events.trim_outbox(conf["OUTBOX_RETENTION"]),
        "stream": _bus().trim(conf["STREAM_RETENTION"]),
        "sweeps": events.trim_sweeps(current - 1),
    }
