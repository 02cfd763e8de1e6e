"""Logging filters: routine lines (Celery's per-task and per-tick lines) go to DEBUG."""
import logging

# Celery's message formats (celery.app.trace, celery.worker.strategy, celery.worker.request,
# celery.beat) for each task received, succeeded, retried, dropped past its expiry (a beat tick that
# waited behind a burst), and each schedule entry sent.
ROUTINE = ("Task %(name)s[%(id)s] received", "Task %(name)s[%(id)s] succeeded", "Task %(name)s[%(id)s] retry",
           "Discarding revoked task", "Scheduler: Sending due task")


class RoutineAtDebug(logging.Filter):
    """Turn routine INFO records into DEBUG ones, kept only where the logger is enabled for DEBUG."""

    def filter(self, record):
        if record.levelno == logging.INFO and isinstance(record.msg, str) and record.msg.startswith(ROUTINE):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True
