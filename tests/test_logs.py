"""Routine lines go to DEBUG: dnsctl.logs.Routine on Celery's per-task and per-tick loggers."""
import logging

import pytest

from dnsctl.logs import Routine


@pytest.fixture
def logger():
    logger = logging.getLogger("dnsctl.tests.routine")
    logger.addFilter(Routine())
    yield logger
    logger.filters.clear()


CONTEXT = {"name": "t", "id": "1", "runtime": 1, "return_value": 0, "exc": "x"}


@pytest.mark.parametrize("message, args", [
    ("Task %(name)s[%(id)s] received", (CONTEXT,)),
    ("Task %(name)s[%(id)s] succeeded in %(runtime)ss: %(return_value)s", (CONTEXT,)),
    ("Task %(name)s[%(id)s] retry: %(exc)s", (CONTEXT,)),
    ("Discarding revoked task: %s[%s]", ("t", "1")),
    ("Scheduler: Sending due task %s (%s)", ("events-relay", "t")),
])
def test_routine_is_debug(logger, caplog, message, args):
    with caplog.at_level(logging.INFO, logger=logger.name):
        logger.info(message, *args)
    assert caplog.records == []
    with caplog.at_level(logging.DEBUG, logger=logger.name):
        logger.info(message, *args)
    assert [r.levelname for r in caplog.records] == ["DEBUG"]


def test_other_lines_keep_their_level(logger, caplog):
    with caplog.at_level(logging.INFO, logger=logger.name):
        logger.info("beat: Starting...")
        logger.error("Task %(name)s[%(id)s] raised unexpected: %(exc)s", {"name": "t", "id": "1", "exc": "x"})
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "beat: Starting..."), ("ERROR", "Task t[1] raised unexpected: x")]


def test_the_level_is_a_setting(caplog):
    logger = logging.getLogger("dnsctl.tests.routine-info")
    logger.addFilter(Routine("INFO"))
    with caplog.at_level(logging.INFO, logger=logger.name):
        logger.info("Scheduler: Sending due task %s (%s)", "recovery", "workers.tasks.recover")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "Scheduler: Sending due task recovery (workers.tasks.recover)")]
