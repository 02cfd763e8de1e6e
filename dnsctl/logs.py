"""Logging filters: routine lines (Celery's per-task and per-tick lines) go to DEBUG."""
import logging

# Celery's message formats (celery.app.trace, celery.worker.strategy, celery.worker.request,
# celery.beat) for each task received, succeeded, retried, dropped past its expiry (a beat tick that
# waited behind a burst), and each schedule entry sent.
ROUTINE = ("Task %(name)s[%(id)s] received", "Task %(name)s[%(id)s] succeeded", "Task %(name)s[%(id)s] retry",
           "Discarding revoked task", "Scheduler: Sending due task")


class Routine(logging.Filter):
    """Log routine INFO records at `level` (LOG_ROUTINE_LEVEL, DEBUG by default): they are kept only
    where the logger is enabled for that level."""

    def __init__(self, level: str = "DEBUG"):
        super().__init__()
        self.level = logging.getLevelName(level.upper())

    def filter(self, record):
        if record.levelno == logging.INFO and isinstance(record.msg, str) and record.msg.startswith(ROUTINE):
            record.levelno, record.levelname = self.level, logging.getLevelName(self.level)
            return logging.getLogger(record.name).isEnabledFor(self.level)
        return True
