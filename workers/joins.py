"""Fan out to header tasks and join their results, without Celery's chord: the header that finishes
last runs the body in its own task, instead of sending the body as a message of its own.

A chord cost a message for its body and, per header, the result backend's chord bookkeeping, and its
counter (INCR) counted a header re-delivered after a lost worker twice. Here each header stores its
result under its own index in one Redis hash (HSET: a re-delivered header overwrites its own field) and
reads the hash back in the same transaction: the one that sees every index runs the body. A header
re-delivered after that body ran finds the hash gone and runs nothing; one re-delivered while the body
ran (its worker died in it) runs it again, which every body allows (tasks are idempotent). A lone
header needs no hash at all.

Errors: every header carries the stage's errback (link_error), which Celery calls in the worker that
saw the failure, for a header that raises, its body that raises in it, or a time limit. Like a chord's
counter, the hash is lost if Redis restarts: its zones stay PENDING until recovery pushes them again.
"""
import json
import uuid

from celery import current_app, signature

PREFIX = "dnsctl:join:"
TTL = 24 * 3600  # s: longer than any stage with its retries; a join whose header failed is left to expire


def fan_out(header: list, body, errback) -> str:
    """Send the header signatures, each told its place in the join and the body to run (a signature
    whose first argument will be the list of the headers' results, in header order)."""
    join = {"id": uuid.uuid4().hex, "n": len(header), "body": dict(body)}
    for i, sig in enumerate(header):
        sig = sig.clone(kwargs={**sig.kwargs, "join": {**join, "i": i}})
        sig.on_error(errback).apply_async()
    return join["id"]


def arrive(join: dict | None, result):
    """A header's last word: store its result; the one that completes the set runs the body here and
    returns what it returns (None otherwise, or without a join)."""
    if not join:
        return None
    if join["n"] > 1:
        key = PREFIX + join["id"]
        pipe = _redis().pipeline(transaction=True)
        pipe.hset(key, str(join["i"]), json.dumps(result, separators=(",", ":")))
        pipe.hgetall(key)
        pipe.expire(key, TTL)
        _, found, _ = pipe.execute()
        if len(found) < join["n"]:
            return None
        results = [json.loads(found[str(i).encode()]) for i in range(join["n"])]
    else:
        results = [result]
    body = signature(join["body"], app=current_app)
    outcome = body.type(results, *body.args, **body.kwargs)
    if join["n"] > 1:
        _redis().delete(PREFIX + join["id"])
    return outcome


def _redis():
    """The result backend's client (chords kept their counters there): its connection pool and retries."""
    return current_app.backend.client
