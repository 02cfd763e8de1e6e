"""Celery tasks: thin. They take ids, re-read the zone, stop when a newer change superseded
them, and call the backends, the DNS client helpers and the consensus math.

zone_action ─► chord(target_action × targets) ─► targets_done ─► notify × nameservers
                                                               └► chord(poll_nameserver × nameservers) ─► polls_done
"""
import logging

from celery import chord, group, shared_task
from django.conf import settings

from workers import consensus, dnsclient
from workers.backends import BackendError, get_backend
from zones import services
from zones.models import Zone
from zones.serials import reached

log = logging.getLogger(__name__)
DELETE = Zone.Action.DELETE
# Redis priorities (0 first): the deeper a task is in a zone's pipeline, the sooner it runs.
# zone_action runs at the default priority (CELERY_TASK_DEFAULT_PRIORITY = 5).
PUSH, FINISH = 3, 0
BACKEND_METHOD = {Zone.Action.CREATE: "create_zone", Zone.Action.UPDATE: "update_zone", DELETE: "delete_zone"}


def _conf(name):
    return settings.DNSCTL[name]


def _superseded(work, action, serial) -> bool:
    """The zone is gone or carries a newer change (work: zone_work() or the lighter zone_version())."""
    return work is None or work["deleted"] or work["serial"] != serial or work["action"] != action


def _threshold(work, action) -> int:
    return 100 if action == DELETE else work["threshold"]


@shared_task
def zone_action(zone_id, action, serial):
    """Push one committed change of a zone to every target of its pool."""
    work = services.zone_work(zone_id)
    if _superseded(work, action, serial):
        return "superseded"
    header = [target_action.s(zone_id, t["id"], action, serial).set(priority=PUSH) for t in work["targets"]]
    if not header:
        services.finish_zone_action(zone_id, action, serial, False, "The zone's pool has no targets.")
        return "no targets"
    chord(header)(targets_done.s(zone_id, action, serial).set(priority=FINISH))
    return f"{action} on {len(header)} targets"


@shared_task(bind=True)
def target_action(self, zone_id, target_id, action, serial):
    """Create, update or delete the zone on one target. Returns a result, never raises (the chord body decides)."""
    work = services.zone_work(zone_id)
    if _superseded(work, action, serial):
        return {"target": target_id, "superseded": True}
    target = next((t for t in work["targets"] if t["id"] == target_id), None)
    if target is None:
        return {"target": target_id, "name": "?", "ok": False, "message": "target removed from the pool"}
    try:
        backend = get_backend(target["type"], target["name"], target["options"], target["masters"])
        getattr(backend, BACKEND_METHOD[action])(work["name"])
    except Exception as exc:  # noqa: BLE001 - any failure is this target's result
        if not isinstance(exc, BackendError):
            log.exception("zone %s: %s on target %s failed unexpectedly", work["name"], action, target["name"])
        if self.request.retries < _conf("TARGET_MAX_RETRIES"):
            raise self.retry(countdown=_conf("TARGET_RETRY_INTERVAL"), max_retries=_conf("TARGET_MAX_RETRIES"))
        message = str(exc) or exc.__class__.__name__
        services.record_target_result(zone_id, target_id, action, serial, False, message)
        return {"target": target_id, "name": target["name"], "ok": False, "message": message}
    services.record_target_result(zone_id, target_id, action, serial, True)
    return {"target": target_id, "name": target["name"], "ok": True, "message": ""}


@shared_task
def targets_done(results, zone_id, action, serial):
    """Consensus over the targets; then NOTIFY the nameservers and poll them for the serial."""
    work = services.zone_work(zone_id)
    if _superseded(work, action, serial) or any(r.get("superseded") for r in results):
        return "superseded"
    succeeded = [r for r in results if r["ok"]]
    threshold = _threshold(work, action)
    if not consensus.threshold_met(len(succeeded), len(results), threshold):
        failures = "; ".join(f"{r['name']}: {r['message']}" for r in results if not r["ok"])
        reason = (f"{action} succeeded on {len(succeeded)} of {len(results)} targets, "
                  f"{threshold}% needed. {failures}")
        services.finish_zone_action(zone_id, action, serial, False, reason)
        return "error"
    if not work["nameservers"]:
        services.finish_zone_action(zone_id, action, serial, False, "The zone's pool has no nameservers to poll.")
        return "no nameservers"
    if action != DELETE:
        peers = work["nameservers"] + work["also_notifies"]
        group(notify.si(work["name"], p["host"], p["port"], serial) for p in peers).apply_async(priority=FINISH)
    polls = [
        poll_nameserver.s(zone_id, work["name"], ns["id"], ns["host"], ns["port"], action, serial).set(
            countdown=_conf("POLL_DELAY"), priority=FINISH)
        for ns in work["nameservers"]
    ]
    chord(polls)(polls_done.s(zone_id, action, serial).set(priority=FINISH))
    return "polling"


@shared_task(ignore_result=True)
def notify(zone_name, host, port, serial):
    """Tell a server the zone changed; a lost NOTIFY only slows things down (polls still decide)."""
    try:
        dnsclient.send_notify(zone_name, host, port, serial, timeout=_conf("NOTIFY_TIMEOUT"),
                              retries=_conf("NOTIFY_RETRIES"))
    except dnsclient.DNSClientError as exc:
        log.warning("NOTIFY %s to %s:%s failed: %s", zone_name, host, port, exc)


@shared_task(bind=True)
def poll_nameserver(self, zone_id, zone_name, nameserver_id, host, port, action, serial):
    """Ask one nameserver for the zone's SOA serial; re-schedule (never sleep) until it has it."""
    if self.request.retries and _superseded(services.zone_version(zone_id), action, serial):
        return {"nameserver": nameserver_id, "superseded": True}
    error = ""
    try:
        observed = dnsclient.query_soa_serial(zone_name, host, port, timeout=_conf("POLL_TIMEOUT"))
    except dnsclient.DNSClientError as exc:
        observed, error = None, str(exc)
    done = (observed is None and not error) if action == DELETE else reached(observed, serial)
    if not done and self.request.retries < _conf("POLL_MAX_RETRIES"):
        raise self.retry(countdown=_conf("POLL_RETRY_INTERVAL"), max_retries=_conf("POLL_MAX_RETRIES"))
    if not done and not error:
        error = (f"still serves serial {observed}" if observed is not None else "does not serve the zone") \
            if action != DELETE else f"still serves the zone (serial {observed})"
    services.record_nameserver_result(zone_id, nameserver_id, serial, observed, done, error)
    return {"nameserver": nameserver_id, "address": f"{host}:{port}", "serial": observed, "ok": done,
            "message": error}


@shared_task
def polls_done(results, zone_id, action, serial):
    """Consensus over the nameservers: ACTIVE (or DELETED) when enough serve the change, else ERROR."""
    work = services.zone_work(zone_id)
    if _superseded(work, action, serial) or any(r.get("superseded") for r in results):
        return "superseded"
    threshold = _threshold(work, action)
    if action == DELETE:
        ok = consensus.threshold_met(sum(r["ok"] for r in results), len(results), threshold)
    else:
        agreed = consensus.consensus_serial([r["serial"] for r in results], threshold)
        ok = reached(agreed, serial)
    reason = ""
    if not ok:
        lagging = "; ".join(f"{r['address']}: {r['message']}" for r in results if not r["ok"])
        reason = (f"{sum(r['ok'] for r in results)} of {len(results)} nameservers "
                  f"{'dropped the zone' if action == DELETE else f'serve serial {serial}'}, "
                  f"{threshold}% needed. {lagging}")
    services.finish_zone_action(zone_id, action, serial, ok, reason)
    return "ok" if ok else "error"
