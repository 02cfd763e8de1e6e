"""Celery tasks: thin. They take ids and plain values, re-read what moved on, and call the
backends, the DNS client helpers, the consensus math and zones.services.

Every push, one zone's change or a sweep of a thousand zones, takes the same path:

push(pool, refs, mode) ─► chord(target_batch × targets) ─► targets_done ─► notify_batch × nameservers
                                                       └► chord(poll_batch × nameservers
                                                                + absence_batch × targets) ─► polls_done

Creates and updates are done when enough nameservers serve the serial (SOA polls); deletes when
every target says it no longer has the zone (absence_batch, the backend's control channel). A
target's calls run fenced (pipeline.fenced), so an older change never lands after a newer delete.
Each chord has an error path (pipeline_failed): a stage that raises ends its zones in ERROR with
the reason.

A batch's zones travel together, so a sweep, or a burst of API changes (one kick, zone_action, takes
every change waiting when it runs), costs a few tasks per batch, not per zone. A ref is one zone's
zones.services.pipeline.ZoneRef (in messages its JSON form: tasks read it with refs_from_json and
send it with refs_to_json); the Mode (CHANGE, SYNC, TARGET_SYNC) says what the outcome means for the
zone. Retries re-schedule the task with what is
left to do (never sleep in a worker); every stage drops zones a newer change superseded.
"""
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from celery import chord, group, shared_task
from django.conf import settings

from dnsctl import metrics
from workers import catalog, consensus, dnsclient, periodic
from workers.backends import get_backend
from zones import journal, transfers
from zones.models import Zone
from zones.serials import reached
from zones.services import pipeline, selectors, sweeps
from zones.services.pipeline import Mode, Outcome, ZoneRef, refs_from_json, refs_to_json

log = logging.getLogger(__name__)
DELETE = Zone.Action.DELETE
# Redis priorities (0 first): the deeper a task is in a pipeline, the sooner it runs, so a burst
# finishes zone by zone. zone_action runs at the default priority (CELERY_TASK_DEFAULT_PRIORITY = 5).
PUSH, FINISH = 3, 0
# No task stores its result: a task sent with ignore_result needs no result-backend subscription, so
# the API can still take changes while Redis is down, and a chord header's result reaches the chord's
# body through the chord's own list in Redis (on_chord_part_return), not through a stored result, so
# storing it too (and a RETRY state for every re-scheduled poll) would only cost three round trips.


def _conf(name):
    return settings.DNSCTL[name]


def _concurrently(fn, items):
    """map() over items with up to DNS_CONCURRENCY threads: NOTIFYs and SOA queries to one server."""
    workers = min(_conf("DNS_CONCURRENCY"), len(items))
    if workers <= 1:
        return list(map(fn, items))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


def push(pool_id, refs: list[ZoneRef], mode: Mode, target_ids: list[str] | None = None) -> str:
    """Start the pipeline for a batch of zones of one pool (a helper, not a task: it builds the chord)."""
    pool = pipeline.pool_work(pool_id)
    targets = [t for t in (pool or {}).get("targets", []) if target_ids is None or t["id"] in target_ids]
    if not targets:
        _finish_each(refs, mode, False, "The zone's pool has no targets.", NOT_READY)
        return "no targets"
    message = refs_to_json(refs)
    header = [target_batch.s(pool_id, t["id"], message, mode).set(priority=PUSH) for t in targets]
    _chord(header, targets_done.s(pool_id, message, mode), refs, mode, "targets")
    return f"{len(refs)} zones on {len(targets)} targets"


NOT_READY = "The zone's pool is not ready to serve zones yet."


def _finish_each(refs, mode, ok, reason="", tenant_reason=""):
    """Record the same outcome for every zone (with the operator's reason and the tenant's), in one
    transaction (pipeline.finish_outcomes: one zone that fails to record never stops the others)."""
    pipeline.finish_outcomes([Outcome(ref, ok, reason, tenant_reason) for ref in refs], mode)


@shared_task(ignore_result=True)
def zone_action(*_old_args):
    """The kick (zones.services sends one after a commit when none is outstanding, see
    pipeline.take_kick): push every change waiting now, BATCH_SIZE zones a batch. The kick is dropped
    before the claim, so a change that commits later sends a kick of its own. (Messages sent before
    kicks existed carry a zone's id, action and serial: they kick just the same.)"""
    pipeline.drop_kick()
    size, summary = _conf("BATCH_SIZE"), {}
    while True:
        refs = pipeline.claim_changes(size)
        _push_batches(refs, Mode.CHANGE, summary)
        if len(refs) < size:
            return summary or "nothing waiting"


def _retry_policy(mode):
    if mode == Mode.SYNC:
        return _conf("PERIODIC_SYNC_MAX_ATTEMPTS") - 1, _conf("PERIODIC_SYNC_RETRY_INTERVAL")
    return _conf("TARGET_MAX_RETRIES"), _conf("TARGET_RETRY_INTERVAL")


TARGET_HARD_LIMIT_GRACE = 30  # s after TARGET_TIMEOUT's soft limit before the hard one kills the attempt


@shared_task(bind=True, ignore_result=True, soft_time_limit=settings.DNSCTL["TARGET_TIMEOUT"],
             time_limit=settings.DNSCTL["TARGET_TIMEOUT"] + TARGET_HARD_LIMIT_GRACE)
def target_batch(self, pool_id, target_id, refs, mode, errors=None):
    """Apply a batch of zones to one target. Returns {zone id: None or the failure}, never raises
    for a target's failure (the chord body decides); the failed zones are retried first.

    The target calls run fenced (pipeline.fenced): the zones are re-read as current while this task
    holds their (target, name) locks, so an older change never lands after a newer delete."""
    errors, mode = dict(errors or {}), Mode(mode)
    deadline = time.monotonic() + _conf("TARGET_TIMEOUT")  # no backend call starts later (threads workers too)
    refs = refs_from_json(refs)
    pool = pipeline.pool_work(pool_id) or {}
    target = next((t for t in pool.get("targets", []) if t["id"] == target_id), None)
    name = target["name"] if target else target_id
    if target is None:
        refs = pipeline.current_refs(refs, mode)
        results = {r.name: "target removed from the pool" for r in refs}
    else:
        try:
            with pipeline.fenced(target_id, refs, mode, wait=_conf("TARGET_TIMEOUT")) as refs:
                results = _apply(pool_id, pool, target, refs, deadline)
        except pipeline.Busy as exc:  # an older change of these zones is still on its way to the target
            results = {r.name: f"target {name}: {exc}" for r in refs}
    for ref in refs:
        errors[ref.id] = results.get(ref.name, "no result from the backend")
    failed = [ref for ref in refs if errors[ref.id]]
    max_retries, interval = _retry_policy(mode)
    retrying = failed and self.request.retries < max_retries
    pool_name = pool.get("name", pool_id)
    metrics.TARGET_ACTIONS.labels(pool_name, name, "ok").inc(len(refs) - len(failed))
    metrics.TARGET_ACTIONS.labels(pool_name, name, "retry" if retrying else "error").inc(len(failed))
    if retrying:
        pipeline.record_target_results(target_id, [r for r in refs if r not in failed], errors)
        raise self.retry(args=(pool_id, target_id, refs_to_json(failed), mode), kwargs={"errors": errors},
                         countdown=interval, max_retries=max_retries)
    pipeline.record_target_results(target_id, refs, errors)
    return {"target": target_id, "name": name, "errors": errors}


def _apply(pool_id, pool, target, refs, deadline) -> dict:
    """The target's calls for refs: {zone name: None or the failure}; a broken target fails every zone."""
    changes = [(r.action, r.name) for r in refs]
    if not changes:
        return {}
    try:
        if pool["catalog_zone"]:  # its servers learn zones from the pool's catalog zone, not from us
            return catalog.provision(pool_id, target, changes)
        backend = get_backend(target["type"], target["name"], target["options"], target["masters"])
        return backend.apply(changes, deadline=deadline)
    except Exception as exc:  # noqa: BLE001 - a broken target is this target's result, for every zone
        log.exception("target %s failed unexpectedly", target["name"])
        return {r.name: str(exc) or type(exc).__name__ for r in refs}


@shared_task(ignore_result=True)
def targets_done(results, pool_id, refs, mode):
    """Consensus over the targets per zone; then NOTIFY the nameservers and poll them for the serials."""
    mode = Mode(mode)
    pool = pipeline.pool_work(pool_id)
    passed, failed = [], []
    for ref in pipeline.current_refs(refs_from_json(refs), mode):
        per_target = {r["name"]: r["errors"][ref.id] for r in results if ref.id in r["errors"]}
        if len(per_target) < len(results):
            continue  # a target saw the zone move on: the newer change decides
        ok, reason, tenant_reason = consensus.targets_verdict(ref.action, pool["threshold"], per_target)
        if ok:
            passed.append(ref)
        else:
            failed.append(Outcome(ref, False, reason, tenant_reason))
    pipeline.finish_outcomes(failed, mode)
    if mode == Mode.TARGET_SYNC:  # replayed deletes are done: nothing to poll for
        passed = [ref for ref in passed if ref.action != DELETE]
    deletes = [ref for ref in passed if ref.action == DELETE]
    changed = [ref for ref in passed if ref.action != DELETE]
    if changed and not pool["nameservers"]:
        _finish_each(changed, mode, False, "The zone's pool has no nameservers to poll.", NOT_READY)
        changed = []
    if not changed and not deletes:
        return "nothing to poll"
    if changed:
        peers = pool["nameservers"] + pool["also_notifies"]
        group(notify_batch.si(p["host"], p["port"], [(ref.name, ref.serial) for ref in changed],
                              pool["notify_source"]) for p in peers).apply_async(priority=FINISH)
    delay = {"countdown": _conf("POLL_DELAY"), "priority": FINISH}
    polls = [poll_batch.s(ns["id"], ns["host"], ns["port"], refs_to_json(changed), mode).set(**delay)
             for ns in pool["nameservers"] if changed]
    # A delete is done when every target says it no longer has the zone (a SOA query cannot tell a
    # zone that is gone from one that is configured but failing: both look unserved).
    polls += [absence_batch.s(pool_id, t["id"], refs_to_json(deletes), mode).set(**delay)
              for t in pool["targets"] if deletes]
    _chord(polls, polls_done.s(pool_id, refs_to_json(changed + deletes), mode), changed + deletes, mode, "polls")
    return f"polling {len(changed)} zones, confirming {len(deletes)} deletes"


@shared_task(ignore_result=True)
def notify_batch(host, port, zones, source=None):
    """Tell a server the zones changed, from the pool's notify_source (Knot, NSD and PowerDNS accept
    NOTIFY only from addresses they know); a lost NOTIFY only slows things down (polls decide)."""
    def one(zone):
        name, serial = zone
        try:
            dnsclient.send_notify(name, host, port, serial, timeout=_conf("NOTIFY_TIMEOUT"),
                                  retries=_conf("NOTIFY_RETRIES"), source=source)
        except dnsclient.DNSClientError as exc:
            log.warning("NOTIFY %s to %s:%s failed: %s", name, host, port, exc)

    _concurrently(one, zones)


def _poll(host, port, refs) -> dict:
    """Ask host:port for every zone's SOA serial at once: {zone id: (serial or None, error)}."""
    def one(ref):
        try:
            return ref.id, (dnsclient.query_soa_serial(ref.name, host, port, timeout=_conf("POLL_TIMEOUT")), "")
        except dnsclient.DNSClientError as exc:
            return ref.id, (None, str(exc))

    return dict(_concurrently(one, refs))


# bounded below: POLL_MAX_RETRIES polls, POLL_TRANSFER_MAX_WAIT s
@shared_task(bind=True, ignore_result=True, max_retries=None)
def poll_batch(self, nameserver_id, host, port, refs, mode, seen=None, used=None, since=None):
    """Poll one nameserver for a batch of zones; re-schedule (never sleep) for the ones still behind.

    A zone that is behind uses one of its POLL_MAX_RETRIES polls each time, the waits between them
    doubling from POLL_RETRY_INTERVAL up to POLL_RETRY_MAX_INTERVAL (_next_poll). While MiniDNS sees the
    nameserver transfer the zone's serial its polls are free (for at most POLL_TRANSFER_MAX_WAIT s from
    the first poll); once MiniDNS has written the transfer's last message, the next poll comes soon.
    Returns {"seen": {zone id: [serial, done, message]}}; done means the nameserver serves the
    zone's serial."""
    seen, refs, mode = dict(seen or {}), refs_from_json(refs), Mode(mode)
    used, since = dict(used or {}), since or time.time()
    if self.request.retries:
        refs = pipeline.current_refs(refs, mode)
    for zone_id, (observed, error) in _poll(host, port, refs).items():
        seen[zone_id] = [observed, False, error]
    behind = []
    for ref in refs:
        observed, _, error = seen[ref.id]
        seen[ref.id][1] = done = reached(observed, ref.serial)
        if not done:
            behind.append(ref)
    in_time = time.time() - since < _conf("POLL_TRANSFER_MAX_WAIT")
    transferring = _transferring(host, behind) if behind and in_time else {}
    again = []
    for ref in behind:
        running = transferring.get(ref.id) == "running"
        if not running:
            used[ref.id] = used.get(ref.id, 0) + 1
        if running or used[ref.id] <= _conf("POLL_MAX_RETRIES"):
            again.append(ref)
    _settle(nameserver_id, host, port, [r for r in refs if r not in again], behind, seen)
    if again:
        polls = self.request.retries + 1
        countdown = min(_next_poll(transferring.get(r.id), used.get(r.id, 0), polls) for r in again)
        raise self.retry(args=(nameserver_id, host, port, refs_to_json(again), mode),
                         kwargs={"seen": seen, "used": used, "since": since}, countdown=countdown)
    return {"nameserver": nameserver_id, "address": f"{host}:{port}", "seen": seen}


def _next_poll(transfer: str | None, used: int, polls: int = 0) -> float:
    """Seconds to the next poll: soon after a transfer's end (the nameserver is loading the zone), else
    doubling from POLL_RETRY_INTERVAL up to POLL_RETRY_MAX_INTERVAL with the zone's counted polls, or
    while a transfer runs with all of the batch's polls (a small zone's transfer ends in milliseconds:
    its polls come soon; a big one's soon come at the longest wait)."""
    base, longest = _conf("POLL_RETRY_INTERVAL"), _conf("POLL_RETRY_MAX_INTERVAL")
    if transfer == "done":
        return base
    return min(base * 2 ** max(0, (polls if transfer == "running" else used) - 1), longest)


def _transferring(host, refs: list[ZoneRef]) -> dict:
    """{zone id: "running" or "done"} for the zones MiniDNS sees `host` transfer at (or past) the serial
    polled for: a transfer under way (or an SOA query at that serial in the last POLL_SOA_ASKED_WINDOW s),
    or one whose end came since the last poll (within the longest wait). A zone with no transfer from host's address counts any server's (one that transfers from
    another address than the one it answers on)."""
    seen = transfers.of_zones([r.id for r in refs if r.action != DELETE])
    now, found = time.time(), {}
    for ref in refs:
        rows = [t for t in seen.get(ref.id, []) if t["serial"] is not None and reached(t["serial"], ref.serial)]
        rows = transfers.from_host(rows, host) or rows
        if any(t["state"] == "running" and now - t["started_at"] < _conf("POLL_TRANSFER_MAX_WAIT")
               or t["state"] == "asked" and now - t["started_at"] < _conf("POLL_SOA_ASKED_WINDOW") for t in rows):
            found[ref.id] = "running"  # a transfer under way, or the server asking our SOA before one
        elif any(t["state"] == "done" and now - t["ended_at"] < _conf("POLL_RETRY_MAX_INTERVAL") for t in rows):
            found[ref.id] = "done"
    return found


def _settle(nameserver_id, host, port, refs, behind, seen):
    """Record the final poll of these zones (and count them); the ones still behind get a message."""
    late = [ref for ref in refs if ref in behind]
    no_answer = sum(1 for ref in late if seen[ref.id][2])
    for outcome, count in (("ok", len(refs) - len(late)), ("error", no_answer), ("behind", len(late) - no_answer)):
        metrics.NAMESERVER_POLLS.labels(f"{host}:{port}", outcome).inc(count)
    for ref in late:
        observed, _, error = seen[ref.id]
        if not error:
            seen[ref.id][2] = f"still serves serial {observed}" if observed is not None else "does not serve the zone"
    if refs:
        _record_polls(nameserver_id, refs, seen)


@shared_task(bind=True, ignore_result=True)
def absence_batch(self, pool_id, target_id, refs, mode, errors=None):
    """Ask one target, by its control channel, whether it still has each deleted zone; re-schedule
    (never sleep) for the ones it still has (a catalog pool's servers drop members when they read the
    catalog). Returns target_batch's shape: {zone id: None once gone, else why not}."""
    errors, refs, mode = dict(errors or {}), refs_from_json(refs), Mode(mode)
    if self.request.retries:
        refs = pipeline.current_refs(refs, mode)
    target = next((t for t in (pipeline.pool_work(pool_id) or {}).get("targets", []) if t["id"] == target_id), None)
    if target is None:
        answers = {r.name: None for r in refs}  # a target that left the pool keeps nothing of ours to serve
    else:
        try:
            backend = get_backend(target["type"], target["name"], target["options"], target["masters"])
            answers = backend.confirm_absent([r.name for r in refs])
        except Exception as exc:  # noqa: BLE001 - cannot tell is not gone
            answers = {r.name: str(exc) or type(exc).__name__ for r in refs}
    for ref in refs:
        errors[ref.id] = answers.get(ref.name, "no answer from the backend")
    present = [ref for ref in refs if errors[ref.id]]
    if present and self.request.retries < _conf("POLL_MAX_RETRIES"):
        raise self.retry(args=(pool_id, target_id, refs_to_json(present), mode), kwargs={"errors": errors},
                         countdown=_next_poll(None, self.request.retries + 1), max_retries=_conf("POLL_MAX_RETRIES"))
    pipeline.record_target_results(target_id, refs, errors)
    return {"target": target_id, "name": target["name"] if target else target_id, "errors": errors}


def _record_polls(nameserver_id, refs, seen):
    pipeline.record_nameserver_results(nameserver_id, [
        {"zone_id": ref.id, "expected_serial": ref.serial, "serial": seen[ref.id][0],
         "ok": seen[ref.id][1], "message": seen[ref.id][2] or ""} for ref in refs])


@shared_task(ignore_result=True)
def polls_done(results, pool_id, refs, mode):
    """Consensus per zone: ACTIVE when enough nameservers serve its serial, DELETED when every target
    no longer has it; else ERROR."""
    mode = Mode(mode)
    pool = pipeline.pool_work(pool_id)
    names = {f"{ns['host']}:{ns['port']}": ns["name"] for ns in pool["nameservers"]}
    polls = [r for r in results if "seen" in r]
    absences = [r for r in results if "errors" in r]
    outcomes = []
    for ref in pipeline.current_refs(refs_from_json(refs), mode):
        if ref.action == DELETE:
            per_target = {r["name"]: r["errors"][ref.id] for r in absences if ref.id in r["errors"]}
            if len(per_target) < len(absences):
                continue  # a target saw the zone move on
            ok, reason, tenant_reason = consensus.targets_verdict(ref.action, pool["threshold"], per_target)
        else:
            observed = {r["address"]: tuple(r["seen"][ref.id]) for r in polls if ref.id in r["seen"]}
            if len(observed) < len(polls):
                continue  # a poll saw the zone move on
            ok, reason, tenant_reason = consensus.nameservers_verdict(ref.action, ref.serial, pool["threshold"],
                                                                      observed, names)
        outcomes.append(Outcome(ref, ok, reason, tenant_reason))
    pipeline.finish_outcomes(outcomes, mode)
    return {"ok": sum(o.ok for o in outcomes), "error": sum(not o.ok for o in outcomes)}


def _chord(header, body, refs, mode, stage):
    """Run header then body, with an error path: a header or body that raises (database or Redis
    error, time limit) puts the zones that are still current in ERROR with the reason at once, instead
    of leaving them PENDING until recovery notices."""
    chord(header)(body.set(priority=FINISH).on_error(pipeline_failed.s(refs_to_json(refs), mode, stage)))


@shared_task(ignore_result=True)
def pipeline_failed(request, exc, traceback, refs, mode, stage):
    """The chord's errback: Celery calls it in the worker that saw the failure (no message to send).
    Each zone's outcome is recorded on its own (finish drops it for a zone that moved on), so a ref
    that cannot be read does not keep the others PENDING."""
    reason = f"The {stage} stage failed: {type(exc).__name__}: {exc}"[:2000]
    log.error("%s: %s", ", ".join(ref["name"] for ref in refs), reason)
    _finish_each(refs_from_json(refs), Mode(mode), False, reason,
                 "The change could not be provisioned; it will be retried.")


# --- periodic and on-demand sweeps (fired by beat on every node; run once per interval) ---------


def _push_batches(refs: list[ZoneRef], mode: Mode, summary: dict, target_ids=None):
    """Push refs pool by pool, BATCH_SIZE zones at a time. A batch that cannot start (broker
    down) is logged with its zones; they stay claimed, so a later sweep sends them again."""
    by_pool = {}
    for ref in refs:
        by_pool.setdefault(ref.pool, []).append(ref)
    size = _conf("BATCH_SIZE")
    for pool_id, pool_refs in by_pool.items():
        for start in range(0, len(pool_refs), size):
            batch = pool_refs[start:start + size]
            try:
                push(pool_id, batch, mode, target_ids)
                summary["pushed"] = summary.get("pushed", 0) + len(batch)
            except Exception:  # noqa: BLE001 - one bad batch never stops a sweep
                log.exception("%s: could not push %s", mode, ", ".join(r.name for r in batch))
                summary["failed"] = summary.get("failed", 0) + len(batch)


def _sweep(name, interval_setting, force, body):
    """Run body(summary) if this node should run the sweep now (see workers.periodic)."""
    with periodic.once_per_interval(name, _conf(interval_setting), force) as summary:
        if summary is None:
            metrics.PERIODIC_RUNS.labels(name, "skipped").inc()
            return "skipped: ran this interval or running elsewhere"
        body(summary)
    metrics.PERIODIC_RUNS.labels(name, "ran").inc()
    for count, value in summary.items():
        metrics.PERIODIC_ZONES.labels(name, count).inc(value)
    # Something a person may act on only when the sweep found work.
    log.log(logging.INFO if any(summary.values()) else logging.DEBUG, "%s: %s", name, summary or "nothing to do")
    return summary


@shared_task(ignore_result=True)
def recover(force=False):
    """Give zones in ERROR, and PENDING zones whose work was lost, their pending action again."""
    def body(summary):
        refs = sweeps.claim_recovery(_conf("RECOVERY_MAX_ZONES"))
        summary["zones"] = len(refs)
        _push_batches(refs, Mode.CHANGE, summary)

    return _sweep("recovery", "RECOVERY_INTERVAL", force, body)


@shared_task(ignore_result=True)
def periodic_sync(force=False):
    """Re-push lagging zones until every nameserver has them, the zones changed lately, and a slice of
    the rest (every zone once per PERIODIC_SYNC_FULL_PASS): bounded, however many zones there are."""
    def body(summary):
        interval = _conf("PERIODIC_SYNC_INTERVAL")
        changed_within = _conf("PERIODIC_SYNC_SECONDS") or 2 * interval
        shards = sweeps.sync_slice(time.time(), interval, _conf("PERIODIC_SYNC_FULL_PASS"))
        for batch in sweeps.sync_batches(_conf("BATCH_SIZE"), changed_within, shards):
            _push_batches(batch, Mode.SYNC, summary)

    return _sweep("sync", "PERIODIC_SYNC_INTERVAL", force, body)


@shared_task(ignore_result=True)
def target_sync(pool_id, target_id, since):
    """Replay everything since `since` onto one target (started by services.start_target_sync)."""
    target = selectors.find_target(pool_id, target_id)
    refs = sweeps.target_sync_plan(target, sweeps.parse_since(since))
    summary = {"zones": len(refs)}
    _push_batches(refs, Mode.TARGET_SYNC, summary, target_ids=[str(target.id)])
    return summary


@shared_task(ignore_result=True)
def purge(force=False):
    """Remove soft-deleted zones once they are older than the retention period, trim the change
    journal by age and by changes per zone, and remove finished import/export tasks."""
    def body(summary):
        summary["purged"] = sweeps.purge_deleted(_conf("PURGE_AFTER"), _conf("PURGE_BATCH_SIZE"))
        summary["zone_tasks_purged"] = sweeps.purge_zone_tasks(_conf("ZONE_TASKS_MAX_AGE"), _conf("PURGE_BATCH_SIZE"))
        summary["journal_trimmed"] = journal.trim(_conf("JOURNAL_MAX_AGE"), _conf("JOURNAL_MAX_CHANGES_PER_ZONE"))

    return _sweep("purge", "PURGE_INTERVAL", force, body)
