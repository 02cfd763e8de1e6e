"""Run a periodic sweep on one node at a time, once per interval.

Every beat node fires the sweep, and any worker may pick it up. The tooz lock makes two
concurrent runs impossible; the run's start time in PeriodicRun stops a second node's tick
from running the sweep again a few seconds after the first (beat nodes tick at their own phases).
"""
import logging
from contextlib import ExitStack, contextmanager

from tooz import coordination as tooz_coordination

from workers import coordination
from zones.services import sweeps

log = logging.getLogger(__name__)


@contextmanager
def once_per_interval(name: str, interval: float, force: bool = False):
    """Yield a dict for the sweep's summary if this node should run it now, else None.

    force skips the once-per-interval check (an operator's manual run) but still takes the lock.
    """
    with ExitStack() as stack:
        try:
            held = stack.enter_context(coordination.lock(f"periodic:{name}", blocking=False))
        except tooz_coordination.ToozError as exc:
            log.warning("%s skipped: the coordination backend is unreachable (%s)", name, exc)
            held = False
        if not held or not sweeps.start_periodic_run(name, 0 if force else interval):
            yield None
            return
        summary = {}
        try:
            yield summary
        finally:
            sweeps.end_periodic_run(name, summary)
