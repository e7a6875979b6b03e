"""OpenAPI schema touches drf-spectacular cannot infer: the error answers every operation may give."""
from __future__ import annotations

from typing import Any

ERROR = {
    "type": "object",
    "properties": {
        "code": {"type": "string", "description": "A stable identifier: invalid, not_found, payload_too_large..."},
        "detail": {"type": "string", "description": "One line naming the problem and, where it helps, the fix."},
        "fields": {"type": "object", "description": "For invalid input: the messages per field.",
                   "additionalProperties": True},
    },
    "required": ["code", "detail"],
}  # fmt: skip

_ERRORS_ON_EVERY_OPERATION = {
    "400": "Invalid input: malformed JSON, an unknown field, a wrong type, a bad filter or cursor.",
    "401": "No credentials, or an invalid or revoked token.",
    "403": "A read-only token on a write, or a session write without its CSRF token.",
    "404": "An unknown id.",
    "406": "An Accept header asking for something other than JSON.",
}
_ERRORS_ON_WRITES = {"413": "A request body over RUNWAY_MAX_REQUEST_BYTES.", "415": "A body that is not JSON."}


def add_error_responses(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: document the JSON error shape on every operation."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR
    ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path in result.get("paths", {}).values():
        for method, operation in path.items():
            errors = dict(_ERRORS_ON_EVERY_OPERATION)
            if method in ("post", "put", "patch"):
                errors.update(_ERRORS_ON_WRITES)
            responses = operation.setdefault("responses", {})
            for code, description in errors.items():
                responses.setdefault(code, {"description": description, "content": ref})
    return result
