"""Request body limits, checked before anything reads a body; the kept database connection's health
check without a round trip when its socket shows it is sound.

What really reads a body: DRF's JSON and form parsers read `request.body`, which Django reads
from a stream cut at the request's Content-Length (WSGIRequest's LimitedStream), and other
parsers read that same stream. So a body is never read past its Content-Length, and a request
without one has, for Django, no body at all: gunicorn answers 400 to a malformed Content-Length
or to Content-Length together with Transfer-Encoding, and gives a request with neither an empty
body. What is left to check is the declared length, and chunked bodies, which gunicorn de-chunks
but Django would silently drop: they are refused outright.
"""
import select

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.http import JsonResponse

# Zone-file imports (Designate's POST /v2/zones/tasks/imports) take IMPORT_MAX_BODY_SIZE.
IMPORT_PATHS = {"/v2/zones/tasks/imports"}


class RequestBodyLimit:
    """413 for a Content-Length over the path's limit, 411 for a chunked body; both unread."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.META.get("HTTP_TRANSFER_ENCODING"):
            return error(411, "length_required",
                         "A request body needs a Content-Length header (Transfer-Encoding is not accepted).")
        limit = (settings.IMPORT_MAX_BODY_SIZE if request.path_info.rstrip("/") in IMPORT_PATHS
                 else settings.API_MAX_BODY_SIZE)
        if declared_length(request) > limit:
            return error(413, "request_too_large", f"The request body is larger than {limit} bytes.")
        return self.get_response(request)


def declared_length(request) -> int:
    """Content-Length read as WSGIRequest reads it: what is not a number counts as 0 (nothing is read)."""
    try:
        return int(request.META.get("CONTENT_LENGTH"))
    except (TypeError, ValueError):
        return 0


def error(code: int, error_type: str, message: str) -> JsonResponse:
    """An error in Designate's shape (zones/api/errors.py) for requests no view will see."""
    return JsonResponse({"code": code, "type": error_type, "message": message}, status=code)


class QuietConnectionCheck:
    """CONN_HEALTH_CHECKS without its round trip (a `SELECT 1` before each request's first query) when
    the kept connection's socket is quiet: idle, nothing to read, no hang-up. A server that ends a
    connection (a restart, pg_terminate_backend, a crash: the kernel closes its sockets) leaves the
    socket readable, and then Django's own check runs, as before, and replaces the connection; only a
    peer gone without a word (no FIN) passes, and then `SELECT 1` would have waited out TCP's timeout
    just as the request's query does. The round trip was a statement per request for PostgreSQL and
    one more wait for the API."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        connection = connections[DEFAULT_DB_ALIAS]
        if (connection.health_check_enabled and not connection.health_check_done
                and connection.vendor == "postgresql" and quiet(connection.connection)):
            connection.health_check_done = True
        return self.get_response(request)


def quiet(raw) -> bool:
    """A psycopg2 connection that is open, idle outside a transaction, and has nothing waiting on its socket."""
    import psycopg2.extensions

    if (not isinstance(raw, psycopg2.extensions.connection) or raw.closed
            or raw.get_transaction_status() != psycopg2.extensions.TRANSACTION_STATUS_IDLE):
        return False
    poller = select.poll()
    poller.register(raw.fileno(), select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP)
    return not poller.poll(0)
