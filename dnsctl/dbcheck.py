"""CONN_HEALTH_CHECKS without its round trip (a `SELECT 1` before the first query of each request or
task on a kept connection) when the connection's socket is quiet: idle, nothing to read, no hang-up.

A server that ends a connection (a restart, pg_terminate_backend, a crash: the kernel closes its
sockets) leaves the socket readable, and then Django's own check runs, as before, and replaces the
connection; only a peer gone without a word (no FIN) passes, and then `SELECT 1` would have waited out
TCP's timeout just as the first real query does. The round trip was a statement per API request and per
Celery task for PostgreSQL (4-7% of the worker's samples under load) and one more wait for each.
"""
import select


def skip_if_quiet(connection) -> None:
    """Mark the check done for this request or task when the kept connection is quiet."""
    if (connection.health_check_enabled and not connection.health_check_done
            and connection.vendor == "postgresql" and quiet(connection.connection)):
        connection.health_check_done = True


def quiet(raw) -> bool:
    """A psycopg2 connection that is open, idle outside a transaction, and has nothing waiting on its socket."""
    import psycopg2.extensions

    if (not isinstance(raw, psycopg2.extensions.connection) or raw.closed
            or raw.get_transaction_status() != psycopg2.extensions.TRANSACTION_STATUS_IDLE):
        return False
    poller = select.poll()
    poller.register(raw.fileno(), select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP)
    return not poller.poll(0)
