"""Errors in Designate's shape: {"code", "type", "message", "errors"}.

Django ValidationError (what services raise, keyed by field) becomes a 400 `invalid_object`, a
name already taken a 409 `duplicate_<thing>`, a quota exceeded a 413 `over_quota`; DRF's own
errors keep their status; an object that is not there (or not the caller's) is a 404
`<thing>_not_found` that names no id. Anything else propagates (a 500 with a traceback in the logs).
"""
from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from zones.models import Pool, RecordSet, Zone
from zones.validation import Duplicate, OverQuota


class ResourceNotFound(exceptions.NotFound):
    error_type = "not_found"

    def __init__(self, resource_id=None):
        """resource_id is what the caller asked for; the message never repeats it (nor confirms it exists)."""
        thing = self.error_type.removesuffix("_not_found").replace("_", " ")
        super().__init__(f"Could not find {thing}.")


class ZoneNotFound(ResourceNotFound):
    error_type = "zone_not_found"


class RecordSetNotFound(ResourceNotFound):
    error_type = "recordset_not_found"


class PoolNotFound(ResourceNotFound):
    error_type = "pool_not_found"


_MISSING = {Zone.DoesNotExist: ZoneNotFound, RecordSet.DoesNotExist: RecordSetNotFound, Pool.DoesNotExist: PoolNotFound}

_TYPES = {
    exceptions.ValidationError: "invalid_object",
    exceptions.ParseError: "invalid_json",
    exceptions.NotAuthenticated: "authentication_required",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "forbidden",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "over_rate_limit",
}


def designate_exception_handler(exc, context):
    if isinstance(exc, Duplicate):
        return _response(status.HTTP_409_CONFLICT, exc.error_type, exc.message_dict)
    if isinstance(exc, OverQuota):
        return _response(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, "over_quota", exc.message_dict,
                         message=f"Quota exceeded for {exc.resource}.")
    if isinstance(exc, DjangoValidationError):
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return _response(status.HTTP_400_BAD_REQUEST, "invalid_object", errors)
    if isinstance(exc, ProtectedError):
        return _response(status.HTTP_409_CONFLICT, "in_use", None, message=str(exc.args[0]))
    if isinstance(exc, ObjectDoesNotExist):
        exc = next((nf() for model_exc, nf in _MISSING.items() if isinstance(exc, model_exc)), exceptions.NotFound())

    response = exception_handler(exc, context)  # also maps Http404 and Django's PermissionDenied
    if response is None:
        return None
    error_type = getattr(exc, "error_type", None) or next(
        (name for cls, name in _TYPES.items() if isinstance(exc, cls)), "error")
    if isinstance(exc, exceptions.ValidationError):
        detail = response.data if isinstance(response.data, dict) else {"non_field_errors": response.data}
        body = _body(response.status_code, error_type, flatten(detail))
    else:
        body = _body(response.status_code, error_type, None, message=str(response.data.get("detail", "")))
    response.data = body
    return response


def _response(code, error_type, errors, message=None):
    return Response(_body(code, error_type, errors, message), status=code)


def _body(code, error_type, errors, message=None):
    if message is None:
        message = " ".join(f"{field}: {' '.join(map(str, msgs))}" for field, msgs in errors.items())
    body = {"code": code, "type": error_type, "message": message}
    if errors is not None:
        body["errors"] = errors
    return body


def flatten(detail, prefix="") -> dict[str, list[str]]:
    """DRF's nested error detail as {"targets[0].type": ["..."]}, the keys services use."""
    result: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            if isinstance(key, int):  # a list's items, by index
                key_path = f"{prefix}[{key}]"
            else:
                key_path = f"{prefix}.{key}" if prefix else str(key)
            result.update(flatten(value, key_path))
    elif isinstance(detail, list) and any(isinstance(item, (dict, list)) for item in detail):
        for i, item in enumerate(detail):
            if item:
                result.update(flatten(item, f"{prefix}[{i}]"))
    else:
        items = detail if isinstance(detail, list) else [detail]
        result[prefix or "non_field_errors"] = [str(item) for item in items]
    return result
