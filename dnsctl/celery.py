"""The Celery app: configuration comes from Django settings (CELERY_* names)."""
import os

from celery import Celery

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
