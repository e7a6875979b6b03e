"""Every API error as one JSON shape: {"code", "detail", "fields"?} with a 4xx status.

The orchestrator's own errors map to statuses here (ObjectNotFound 404,
InvalidInput 400); DRF's validation errors keep their per-field messages
under "fields" and get a "detail" line naming the first bad field.
"""
from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from orchestrator.exceptions import InvalidInput, ObjectNotFound


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"


def handle_exception(exc: Exception, context: dict[str, Any]) -> Response | None:
    exc = _translate(exc)
    response = exception_handler(exc, context)
    if response is None:
        return None
    response.data = _body(exc, response.data)
    return response


def _translate(exc: Exception) -> Exception:
    if isinstance(exc, ObjectNotFound):
        return exceptions.NotFound(str(exc))
    if isinstance(exc, InvalidInput):
        return exceptions.ValidationError({"detail": str(exc)}, code="invalid")
    if isinstance(exc, (RequestDataTooBig, TooManyFieldsSent)):
        return PayloadTooLarge(
            "the request body is larger than this server accepts (RUNWAY_MAX_REQUEST_BYTES); send smaller batches"
        )
    if isinstance(exc, Http404):
        return exceptions.NotFound(str(exc) or "not found")
    return exc


def _body(exc: Exception, data: Any) -> dict[str, Any]:
    code = getattr(exc, "default_code", "error")
    if isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else code
    if isinstance(data, dict) and set(data) == {"detail"}:
        detail = data["detail"]
        return {"code": code if isinstance(code, str) else "invalid",
                "detail": str(detail[0] if isinstance(detail, list) and detail else detail)}  # fmt: skip
    return {"code": "invalid", "detail": _first_message(data), "fields": data}


def _first_message(data: Any, path: str = "") -> str:
    """'tags.0: Not a valid string.' from DRF's nested error lists and dicts."""
    if isinstance(data, dict):
        for key, value in data.items():
            where = key if key in ("detail", "non_field_errors") else f"{path}{key}"
            return _first_message(value, "" if where in ("detail", "non_field_errors") else f"{where}.")
    if isinstance(data, list) and data:
        if all(isinstance(item, str) for item in data):
            return f"{path.rstrip('.')}: {data[0]}" if path else str(data[0])
        for index, item in enumerate(data):
            if item:
                return _first_message(item, f"{path}{index}.")
    return f"{path.rstrip('.')}: {data}" if path else str(data)


def not_found(request, exception: Exception | None = None):
    """Django's 404 for URLs no route matches: JSON under /api/, the usual page elsewhere."""
    from django.http import JsonResponse
    from django.views.defaults import page_not_found

    if request.path.startswith("/api/"):
        detail = f"no API endpoint or object at {request.path}; see /api/docs/"
        return JsonResponse({"code": "not_found", "detail": detail}, status=404)
    return page_not_found(request, exception)
