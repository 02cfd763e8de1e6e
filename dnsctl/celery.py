"""The Celery app: configuration comes from Django settings (CELERY_* names)."""
import os
import time

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dnsctl.settings")

app = Celery("dnsctl")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers"])
app.autodiscover_tasks(["workers"], related_name="event_tasks")
app.autodiscover_tasks(["workers"], related_name="zone_tasks")


def _add_heartbeat():
    """A worker's consumer writes a heartbeat for /health while it takes tasks (workers/heartbeat.py)."""
    from workers.heartbeat import WorkerHeartbeat

    app.steps["consumer"].add(WorkerHeartbeat)


_add_heartbeat()


# A connection that served a task this recently is taken as alive: its health check (a SELECT 1 round
# trip before the task's first query, CONN_HEALTH_CHECKS) is skipped. Under load tasks follow each other
# within milliseconds and the check was 4-7% of the worker's samples; one idle longer is checked, and
# one that broke meanwhile fails its task, which Django then closes (errors_occurred) after it.
RECENTLY_USED = 1.0  # s


@signals.task_prerun.connect
def _before_task(**kwargs):
    if _ours(kwargs):
        _close_old_connections(recent=True)


@signals.task_postrun.connect
def _after_task(**kwargs):
    if _ours(kwargs):
        _close_old_connections(recent=False)


def _ours(kwargs) -> bool:
    """Not a task run in the caller's thread, maybe inside its transaction: its connection is not ours."""
    task = kwargs.get("task")
    return not (task is not None and getattr(task.request, "is_eager", False))


def _close_old_connections(recent: bool):
    """Keep this thread's connection across tasks, as Django keeps a web worker's across requests:
    closed only when older than CONN_MAX_AGE or broken (CELERY_DB_REUSE_MAX stops the fixup's close).
    Before a task, a connection used within RECENTLY_USED s needs no health check."""
    from django.db import connections

    now = time.monotonic()
    for conn in connections.all(initialized_only=True):
        conn.close_if_unusable_or_obsolete()
        if conn.connection is None:
            continue
        if recent and now - getattr(conn, "dnsctl_used_at", float("-inf")) < RECENTLY_USED:
            conn.health_check_done = True
        if not recent:
            conn.dnsctl_used_at = now
