"""The Celery app: configuration comes from Django settings (CELERY_* names)."""
import os

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


@signals.task_prerun.connect
@signals.task_postrun.connect
def _reuse_db_connection(**kwargs):
    """Keep this thread's connection across tasks, as Django keeps a web worker's across requests:
    closed only when older than CONN_MAX_AGE or broken (CELERY_DB_REUSE_MAX stops the fixup's close),
    and its health check without a round trip when its socket is quiet (dnsctl.dbcheck)."""
    task = kwargs.get("task")
    if task is not None and getattr(task.request, "is_eager", False):
        return  # run in the caller's thread, maybe inside its transaction: its connection is not ours
    from django.db import close_old_connections, connections

    from dnsctl import dbcheck

    close_old_connections()
    for connection in connections.all(initialized_only=True):
        dbcheck.skip_if_quiet(connection)
