"""gunicorn's settings for bin/start: `gunicorn -c python:dnsctl.gunicorn dnsctl.wsgi`."""
import ctypes
import signal

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def post_fork(server, worker):
    """A worker gets SIGTERM when its master dies, even by SIGKILL: the master the supervisor starts
    in its place then binds the port at once, instead of waiting (up to half gunicorn's timeout)
    for orphaned workers that still hold it. Linux only; elsewhere the orphans leave on their own."""
    prctl = getattr(ctypes.CDLL(None), "prctl", None)
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
