"""OpenAPI schema touches drf-spectacular cannot infer: the error answers every operation may give, and
the links between operations (a created flow's runs, a run's states, a deployment's runs), which tell
clients and stateful fuzzers (schemathesis, tests/security/test_schema_fuzz.py) how answers feed requests."""
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


def _path(expression: str, name: str = "id") -> dict[str, Any]:
    return {"parameters": {name: expression}}


_RUN = "$response.body#/flow_run/id"
_TASK_RUN = "$response.body#/task_run/id"
_DEPLOYMENT = "$response.body#/deployment/id"
_FIRST = "$response.body#/results/0/id"
# operationId -> response status -> link name -> (target operationId, parameters / requestBody)
LINKS: dict[str, dict[str, dict[str, tuple[str, dict[str, Any]]]]] = {
    "flows_create": {status: {
        "GetFlow": ("flows_retrieve", _path("$response.body#/id")),
        # the whole body (flow_id and flow_name exclude each other): not merged into a generated one
        "CreateFlowRun": ("flow_runs_create", {"requestBody": {"flow_id": "$response.body#/id"},
                                               "x-schemathesis": {"merge_body": False}}),
        "ListFlowRuns": ("flow_runs_list", {"parameters": {"query.flow": "$response.body#/id"}}),
    } for status in ("200", "201")},
    "flows_list": {"200": {"GetFlow": ("flows_retrieve", _path(_FIRST))}},
    "flow_runs_create": {"201": {
        "GetFlowRun": ("flow_runs_retrieve", _path(_RUN)),
        "SetState": ("flow_runs_set_state_create", _path(_RUN)),
        "States": ("flow_runs_states_list", _path(_RUN)),
        "Cancel": ("flow_runs_cancel_create", _path(_RUN)),
        "Resume": ("flow_runs_resume_create", _path(_RUN)),
        "CreateTaskRun": ("task_runs_create", {"requestBody": {"flow_run_id": _RUN}}),
        "Logs": ("logs_list", {"parameters": {"query.flow_run": _RUN}}),
    }},
    "flow_runs_list": {"200": {"GetFlowRun": ("flow_runs_retrieve", _path(_FIRST)),
                               "States": ("flow_runs_states_list", _path(_FIRST))}},
    "flow_runs_set_state_create": {status: {"States": ("flow_runs_states_list", _path("$request.path.id"))}
                                   for status in ("200", "409")},
    "task_runs_create": {"201": {
        "GetTaskRun": ("task_runs_retrieve", _path(_TASK_RUN)),
        "SetState": ("task_runs_set_state_create", _path(_TASK_RUN)),
        "States": ("task_runs_states_list", _path(_TASK_RUN)),
    }},
    "task_runs_set_state_create": {status: {"States": ("task_runs_states_list", _path("$request.path.id"))}
                                   for status in ("200", "409")},
    "deployments_create": {status: {
        "GetDeployment": ("deployments_retrieve", _path(_DEPLOYMENT)),
        "RunDeployment": ("deployments_runs_create", _path(_DEPLOYMENT)),
        "PauseDeployment": ("deployments_pause_create", _path(_DEPLOYMENT)),
        "DeleteDeployment": ("deployments_destroy", _path(_DEPLOYMENT)),
    } for status in ("200", "201")},
    "deployments_list": {"200": {"GetDeployment": ("deployments_retrieve", _path(_FIRST)),
                                 "RunDeployment": ("deployments_runs_create", _path(_FIRST))}},
    "deployments_retrieve": {"200": {
        "RunDeployment": ("deployments_runs_create", _path("$response.body#/id")),
        "PauseDeployment": ("deployments_pause_create", _path("$response.body#/id")),
        "ResumeDeployment": ("deployments_resume_create", _path("$response.body#/id")),
        "PauseSchedules": ("deployments_pause_schedule_create", _path("$response.body#/id")),
        "ResumeSchedules": ("deployments_resume_schedule_create", _path("$response.body#/id")),
    }},
    "deployments_runs_create": {"201": {
        "GetFlowRun": ("flow_runs_retrieve", _path("$response.body#/id")),
        "States": ("flow_runs_states_list", _path("$response.body#/id")),
        "SetState": ("flow_runs_set_state_create", _path("$response.body#/id")),
        "Deployment": ("deployments_retrieve", _path("$request.path.id")),
    }},
    "work_queues_create": {"201": {
        name: (target, _path("$response.body#/name", "name")) for name, target in (
            ("GetWorkQueue", "work_queues_retrieve"), ("PauseWorkQueue", "work_queues_pause_create"),
            ("ResumeWorkQueue", "work_queues_resume_create"), ("LimitWorkQueue", "work_queues_set_concurrency_limit_create"),
            ("DeleteWorkQueue", "work_queues_destroy"))
    }},
    "concurrency_limits_create": {status: {
        "GetLimit": ("concurrency_limits_retrieve", _path("$response.body#/tag", "tag")),
        "DeleteLimit": ("concurrency_limits_destroy", _path("$response.body#/tag", "tag")),
    } for status in ("200", "201")},
    "notifications_create": {"201": {
        name: (target, _path("$response.body#/id")) for name, target in (
            ("GetRule", "notifications_retrieve"), ("ReplaceRule", "notifications_update"),
            ("ChangeRule", "notifications_partial_update"), ("Deliveries", "notifications_deliveries_list"),
            ("TestRule", "notifications_test_create"), ("DeleteRule", "notifications_destroy"))
    }},
    "notifications_test_create": {"202": {"Deliveries": ("notifications_deliveries_list", _path("$request.path.id"))}},
}  # fmt: skip


def close_strict_bodies(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: request bodies of StrictSerializer subclasses, which refuse
    fields they do not declare, say so (additionalProperties: false)."""
    from orchestrator.api.serializers import StrictSerializer

    strict: set[str] = set()
    pending = [StrictSerializer]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        name = cls.__name__.removesuffix("Serializer") + "Request"
        strict.update((name, "Patched" + name))
    for name, component in result.get("components", {}).get("schemas", {}).items():
        if name in strict and component.get("type") == "object":
            component.setdefault("additionalProperties", False)
    return result


def add_links(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: the OpenAPI links of LINKS, on the operations the schema has."""
    operations = {op["operationId"]: op for item in result.get("paths", {}).values() for op in item.values()
                  if isinstance(op, dict) and "operationId" in op}  # fmt: skip
    for source, by_status in LINKS.items():
        if source not in operations:
            continue
        for status, links in by_status.items():
            response = operations[source].get("responses", {}).get(status)
            if response is None:
                continue
            found = {name: {"operationId": target, **how} for name, (target, how) in links.items() if target in operations}
            response.setdefault("links", {}).update(found)
    return result
