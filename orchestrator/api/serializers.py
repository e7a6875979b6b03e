"""What crosses the API: runs, states and logs out; proposals and new runs in.

Input serializers are strict: an unknown field is an error naming it, so a
typo never silently drops a value. They only validate and convert; services
decide.
"""
from __future__ import annotations

import uuid
from datetime import timezone
from typing import Any

from rest_framework import serializers

from orchestrator.runs.models import Flow, FlowRun, Log, StateTypeChoices, TaskRun
from orchestrator.schemas import State, StateDetails, StateType

MAX_LOGS_PER_REQUEST = 1000
MAX_TASK_RUNS_PER_REQUEST = 500


class StrictSerializer(serializers.Serializer):
    """Rejects fields it does not declare."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                known = ", ".join(sorted(self.fields))
                raise serializers.ValidationError(
                    {name: [f"unknown field {name!r}; this object takes: {known}"] for name in unknown}
                )
        return super().to_internal_value(data)


# --- states ------------------------------------------------------------------------------
class StateOut(serializers.Serializer):
    id = serializers.UUIDField(allow_null=True)
    type = serializers.ChoiceField(choices=StateTypeChoices.choices)
    name = serializers.CharField()
    message = serializers.CharField(allow_null=True)
    timestamp = serializers.DateTimeField(allow_null=True)
    details = serializers.DictField()
    result = serializers.JSONField(allow_null=True)

    def to_representation(self, instance: Any) -> dict[str, Any]:
        if isinstance(instance, State):
            return instance.to_dict()
        return super().to_representation(instance)


class StateIn(StrictSerializer):
    """A proposed state. `id` and `timestamp` are accepted and ignored: the orchestrator sets them."""

    type = serializers.ChoiceField(choices=StateTypeChoices.choices)
    name = serializers.CharField(max_length=64, required=False, allow_null=True)
    message = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=100_000)
    details = serializers.DictField(required=False, default=dict)
    result = serializers.JSONField(required=False, allow_null=True, default=None)
    id = serializers.UUIDField(required=False, allow_null=True, help_text="Ignored.")
    timestamp = serializers.DateTimeField(required=False, allow_null=True, help_text="Ignored.")

    def validate_details(self, value: dict[str, Any]) -> StateDetails:
        try:
            details = StateDetails.from_dict(value, strict=True)
        except (TypeError, ValueError) as exc:
            raise serializers.ValidationError(f"bad state details: {exc}") from None
        for name in StateDetails._DATETIMES:  # in UTC: databases refuse some offsets Python accepts
            when = getattr(details, name)
            if when is None:
                continue
            if when.tzinfo is None:
                raise serializers.ValidationError(f"{name} {when.isoformat()!r} needs a time zone (e.g. Z)")
            try:
                setattr(details, name, when.astimezone(timezone.utc))
            except OverflowError:
                raise serializers.ValidationError(f"{name} {when.isoformat()!r} is out of the range of dates") from None
        return details

    def validate_result(self, value: Any) -> Any:
        if value is not None and not isinstance(value, dict):
            raise serializers.ValidationError("a result reference is an object, such as {\"type\": \"json\", \"value\": 1}")
        return value

    def validate(self, data: dict[str, Any]) -> State:
        """The proposal as the shared State schema (what the services take)."""
        return State(type=StateType(data["type"]), name=data.get("name"), message=data.get("message") or None,
                     details=data.get("details") or StateDetails(), result=data.get("result"))  # fmt: skip


class SetStateIn(StrictSerializer):
    state = StateIn()
    force = serializers.BooleanField(
        default=False, help_text="Skip the core rules (an operator's or a sweep's authoritative write)."
    )


class OrchestrationResultOut(serializers.Serializer):
    """The orchestrator's answer to a proposal."""

    status = serializers.ChoiceField(choices=["ACCEPT", "REJECT", "WAIT", "ABORT"])
    state = StateOut(allow_null=True, help_text="The state the run is in now.")
    reason = serializers.CharField(allow_null=True)
    delay_seconds = serializers.FloatField(allow_null=True, help_text="For WAIT: propose again after this long.")
    run_count = serializers.IntegerField(allow_null=True, help_text="The run's attempts so far, this one included.")


# --- flows and runs ----------------------------------------------------------------------
class FlowOut(serializers.ModelSerializer):
    class Meta:
        model = Flow
        fields = ["id", "name", "created"]


class FlowIn(StrictSerializer):
    name = serializers.CharField(max_length=255)


class CurrentStateOut(serializers.Serializer):
    """The run's current state as copied on the run row (its history: the `states` endpoint)."""

    id = serializers.UUIDField(source="state_id", allow_null=True)
    type = serializers.CharField(source="state_type", allow_null=True)
    name = serializers.CharField(source="state_name", allow_null=True)
    timestamp = serializers.DateTimeField(source="state_timestamp", allow_null=True)


_RUN_FIELDS = [
    "id", "name", "state", "tags", "empirical_policy", "run_count", "start_time", "end_time", "total_run_time",
    "expected_start_time", "next_scheduled_start_time", "hostname", "pid", "created",
]  # fmt: skip


class FlowRunOut(serializers.ModelSerializer):
    state = CurrentStateOut(source="*")
    flow_name = serializers.CharField(source="flow.name")

    class Meta:
        model = FlowRun
        fields = [*_RUN_FIELDS, "flow_id", "flow_name", "parameters", "parent_flow_run_id", "idempotency_key",
                  "deployment_id", "work_queue_name", "code_version", "worker", "run_input"]  # fmt: skip


class TaskRunOut(serializers.ModelSerializer):
    state = CurrentStateOut(source="*")

    class Meta:
        model = TaskRun
        fields = [*_RUN_FIELDS, "flow_run_id", "task_key", "dynamic_key", "cache_key", "task_inputs",
                  "flow_run_run_count", "worker", "heartbeat"]  # fmt: skip


MAX_RETRY_DELAY = 366 * 24 * 3600.0  # a year: beyond it a date overflows, and no one means it


class EmpiricalPolicyIn(StrictSerializer):
    retries = serializers.IntegerField(min_value=0, max_value=1000, default=0)
    retry_delay = serializers.JSONField(default=0, help_text="Seconds: a number, or a list (one per retry).")
    retry_jitter_factor = serializers.FloatField(min_value=0, max_value=10, required=False, allow_null=True)

    def validate_retry_delay(self, value: Any) -> Any:
        values = value if isinstance(value, list) else [value]
        if not values or len(values) > 1000 or not all(_seconds(v) for v in values):
            raise serializers.ValidationError(
                f"retry_delay must be a number of seconds from 0 to {MAX_RETRY_DELAY:.0f}, or a list of them"
            )
        return value


def _seconds(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= MAX_RETRY_DELAY


class _RunIn(StrictSerializer):
    name = serializers.CharField(max_length=255, required=False)
    state = StateIn(required=False, help_text="The first state; default Pending.")
    tags = serializers.ListField(child=serializers.CharField(max_length=255), required=False, default=list)
    empirical_policy = EmpiricalPolicyIn(required=False)
    hostname = serializers.CharField(max_length=255, required=False, default="", allow_blank=True)
    pid = serializers.IntegerField(min_value=0, max_value=2**31 - 1, required=False, allow_null=True)


class FlowRunIn(_RunIn):
    flow_id = serializers.UUIDField(required=False)
    flow_name = serializers.CharField(max_length=255, required=False)
    parameters = serializers.DictField(required=False, default=dict)
    parent_flow_run_id = serializers.UUIDField(required=False, allow_null=True)
    idempotency_key = serializers.CharField(
        max_length=255, required=False, allow_null=True,
        help_text="A second create with the same key (for the same flow) returns the first run.",
    )  # fmt: skip

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if bool(data.get("flow_id")) == bool(data.get("flow_name")):
            raise serializers.ValidationError({"flow_id": ["give exactly one of flow_id and flow_name"]})
        return data


class TaskRunIn(_RunIn):
    id = serializers.UUIDField(required=False, help_text="Chosen by the client, so a retried create is idempotent.")
    flow_run_id = serializers.UUIDField(allow_null=True, required=False)
    task_key = serializers.CharField(max_length=512)
    dynamic_key = serializers.CharField(max_length=255, required=False)
    task_inputs = serializers.DictField(required=False, default=dict)
    cache_key = serializers.CharField(max_length=255, required=False, allow_null=True)
    then = StateIn(
        required=False, allow_null=True,
        help_text="A state to propose right after creation, in the same transaction (e.g. Running).",
    )  # fmt: skip

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        data.setdefault("dynamic_key", uuid.uuid4().hex[:8])
        data.setdefault("name", f"{data['task_key'].rsplit('.', 1)[-1]}-{data['dynamic_key']}")
        return data


class TaskRunBatchOut(serializers.Serializer):
    id = serializers.UUIDField()
    orchestration = OrchestrationResultOut()


class FinalStatesIn(serializers.Serializer):
    flow_run = serializers.UUIDField()
    since = serializers.DateTimeField(required=False)


class RunRenameIn(StrictSerializer):
    name = serializers.CharField(max_length=255)


class ClaimIn(StrictSerializer):
    worker = serializers.CharField(max_length=255)
    hostname = serializers.CharField(max_length=255, allow_blank=True)
    pid = serializers.IntegerField(min_value=0, max_value=2**31 - 1, allow_null=True)
    dispatch = serializers.JSONField(allow_null=True, help_text="The message to send again if the run is retried.")
    then = StateIn(
        required=False, allow_null=True,
        help_text="A state (Running) to propose in the same transaction if the claim succeeds; "
                  "give it a details.transition_key, so a retried request is answered, not applied twice.",
    )  # fmt: skip


class ClaimOut(serializers.Serializer):
    status = serializers.ChoiceField(choices=["claimed", "held", "finished"])
    reason = serializers.CharField(allow_blank=True)
    orchestration = OrchestrationResultOut(
        required=False, help_text="With `then`, when claimed: the answer to that proposal."
    )


class FlowRunClaimIn(StrictSerializer):
    worker = serializers.CharField(max_length=255)
    hostname = serializers.CharField(max_length=255, allow_blank=True)
    pid = serializers.IntegerField(min_value=0, max_value=2**31 - 1, allow_null=True)


class FlowRunClaimOut(ClaimOut):
    run = serializers.DictField(help_text="When claimed: the deployment's entrypoint, code_path and code_version.")


class ProcessExitedIn(StrictSerializer):
    worker = serializers.CharField(max_length=255)
    why = serializers.CharField(max_length=2000)


class PauseIn(StrictSerializer):
    key = serializers.CharField(max_length=255, help_text="Which pause of the run this is (the SDK counts them).")
    timeout_seconds = serializers.FloatField(min_value=0.001, max_value=366 * 24 * 3600)
    reschedule = serializers.BooleanField(default=False, help_text="Suspend: the process ends; resumed, the run is scheduled again.")
    input_schema = serializers.JSONField(required=False, allow_null=True, default=None,
                                         help_text="JSON schema of the input resuming must give.")  # fmt: skip
    from_state_id = serializers.CharField(max_length=255, required=False, allow_null=True, default=None)


class PauseOut(serializers.Serializer):
    orchestration = OrchestrationResultOut()
    resumed = serializers.BooleanField(help_text="This pause was resumed already (a suspended run running again).")
    value = serializers.JSONField(allow_null=True, help_text="The input it was resumed with.")


class ResumeIn(StrictSerializer):
    run_input = serializers.JSONField(required=False, allow_null=True, default=None,
                                      help_text="The input the paused run waits for, checked against its schema.")  # fmt: skip


class ReleaseIn(StrictSerializer):
    worker = serializers.CharField(max_length=255)


class HeartbeatIn(StrictSerializer):
    worker = serializers.CharField(max_length=255)
    ids = serializers.ListField(child=serializers.UUIDField(), max_length=1000)


class SweepIn(StrictSerializer):
    ids = serializers.ListField(child=serializers.UUIDField(), max_length=1000, allow_null=True, required=False)


# --- logs --------------------------------------------------------------------------------
class LogOut(serializers.ModelSerializer):
    class Meta:
        model = Log
        fields = ["id", "flow_run_id", "task_run_id", "level", "name", "message", "timestamp"]


class LogIn(StrictSerializer):
    flow_run_id = serializers.UUIDField(required=False, allow_null=True)
    task_run_id = serializers.UUIDField(required=False, allow_null=True)
    level = serializers.IntegerField(min_value=0, max_value=100)
    name = serializers.CharField(max_length=255)
    message = serializers.CharField(allow_blank=True, trim_whitespace=False)
    timestamp = serializers.DateTimeField()

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if not data.get("flow_run_id") and not data.get("task_run_id"):
            raise serializers.ValidationError({"flow_run_id": ["a log line needs a flow_run_id or a task_run_id"]})
        return data


class CountsOut(serializers.Serializer):
    total = serializers.IntegerField()
    by_type = serializers.DictField(child=serializers.IntegerField())
    by_name = serializers.DictField(child=serializers.IntegerField())
