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
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.http import JsonResponse

from dnsctl import dbcheck

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
    """The request's connection check without its round trip when it may (dnsctl.dbcheck)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        dbcheck.skip_if_quiet(connections[DEFAULT_DB_ALIAS])
        return self.get_response(request)
