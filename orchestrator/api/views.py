"""API views: validate with a serializer, call a selector or a service, render.

Routes (orchestrator/api/urls.py):
  /api/flows/                        list, create (get-or-create by name), retrieve
  /api/flow_runs/                    list (filters, ordering, cursor), create, retrieve
  /api/flow_runs/counts/             counts by state type and name, same filters
  /api/flow_runs/{id}/set_state/     propose a state: the rules engine answers
  /api/flow_runs/{id}/states/        the run's state history, oldest first
  /api/flow_runs/{id}/cancel/        cancel it (Cancelled at once, or Cancelling while it runs)
  /api/flow_runs/{id}/pause/         its own code pauses (or suspends) it
  /api/flow_runs/{id}/resume/        resume a paused run, with the input it waits for
  /api/task_runs/...                 the same for task runs
  /api/logs/                         list (by run, level, time, text), batch create
"""
from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from django.conf import settings
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from orchestrator.api import filters as api_filters
from orchestrator.api.pagination import StateCursor
from orchestrator.api import serializers as api
from orchestrator.deployments import agents
from orchestrator.runs import claims, pauses, selectors, services
from orchestrator.runs.models import Flow, FlowRun, FlowRunState, Log, TaskRun, TaskRunState
from orchestrator.schemas import OrchestrationResult, SetStateStatus, State, StateType

UUID_PATTERN = "[0-9a-fA-F-]{32,36}"
RUN_ORDERING = ["created", "expected_start_time", "state_timestamp", "name"]


def _validated(serializer_class: type[serializers.Serializer], data: Any, **kwargs: Any) -> Any:
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer


def _run_id(pk: str, label: str) -> UUID:
    try:
        return UUID(pk)
    except ValueError:
        raise NotFound(f"{label} {pk!r} is not a UUID") from None


def _answer(result: OrchestrationResult, http_status: int = status.HTTP_200_OK) -> Response:
    return Response(result.to_dict(), status=http_status)


class FlowViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = Flow.objects.all()
    serializer_class = api.FlowOut
    lookup_value_regex = UUID_PATTERN
    filterset_fields = {"name": ["exact", "icontains"]}
    ordering_fields = ["name", "created"]
    ordering = ["name"]

    @extend_schema(request=api.FlowIn, responses={200: api.FlowOut, 201: api.FlowOut})
    def create(self, request: Request) -> Response:
        """The flow with this name, created if new (201) or as it was (200)."""
        name = _validated(api.FlowIn, request.data).validated_data["name"]
        existed = Flow.objects.filter(name=name).exists()
        flow = services.flow_get_or_create(name=name)
        return Response(api.FlowOut(flow).data, status=status.HTTP_200_OK if existed else status.HTTP_201_CREATED)


class _RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """What flow runs and task runs share: lists, counts, set_state, states."""

    lookup_value_regex = UUID_PATTERN
    ordering_fields = RUN_ORDERING
    ordering = ["-expected_start_time"]
    kind: str
    state_model: type

    @extend_schema(request=api.RunRenameIn)
    def partial_update(self, request: Request, pk: str) -> Response:
        """Rename the run (its only field changed here; states change through set_state): how a
        flow_run_name or task_run_name made in the run's context, or from upstream results, is recorded."""
        name = _validated(api.RunRenameIn, request.data).validated_data["name"]
        run_id = _run_id(pk, f"{self.kind} run")
        set_name = services.flow_run_set_name if self.kind == "flow" else services.task_run_set_name
        set_name(**{f"{self.kind}_run_id": run_id}, name=name)
        return Response(self.get_serializer(self.get_queryset().get(pk=run_id)).data)

    @extend_schema(responses=api.CountsOut)
    @action(detail=False, pagination_class=None)
    def counts(self, request: Request) -> Response:
        """How many runs match the filters, by state type and by state name."""
        return Response(selectors.run_counts_by_state(self.filter_queryset(self.get_queryset())))

    @extend_schema(
        request=api.SetStateIn,
        responses={
            200: api.OrchestrationResultOut,
            404: OpenApiResponse(description="No such run."),
            409: OpenApiResponse(api.OrchestrationResultOut, description="An illegal transition: nothing changed."),
        },
    )
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    def set_state(self, request: Request, pk: str) -> Response:
        """Propose a state. The rules engine answers ACCEPT, REJECT (with the state the run is in
        instead), WAIT (propose again after delay_seconds) or ABORT.

        Put a unique `details.transition_key` in each proposal: a retried request
        with the same key is answered again, never applied twice. An illegal
        transition (Completed to Running, say) changes nothing and answers 409
        with the same body: status REJECT, the run's unchanged state, the reason.
        """
        proposal = _validated(api.SetStateIn, request.data).validated_data
        run_id = _run_id(pk, f"{self.kind} run")
        asked_at = timezone.now()
        set_state = services.flow_run_set_state if self.kind == "flow" else services.task_run_set_state
        result = set_state(**{f"{self.kind}_run_id": run_id}, state=proposal["state"], force=proposal["force"])
        if _refused(result, asked_at, proposal["state"]):
            body = {**result.to_dict(), "code": "illegal_transition", "detail": result.reason}
            return Response(body, status=status.HTTP_409_CONFLICT)
        return _answer(result)

    @extend_schema(responses=api.StateOut(many=True), filters=False)
    @action(detail=True, filter_backends=[], pagination_class=StateCursor)
    def states(self, request: Request, pk: str) -> Response:
        """The run's state history, oldest first."""
        run_id = _run_id(pk, f"{self.kind} run")
        if not self.get_queryset().filter(pk=run_id).exists():
            raise NotFound(f"{self.kind} run {pk} does not exist")
        rows = self.state_model.objects.filter(**{f"{self.kind}_run_id": run_id}).order_by("timestamp")
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(api.StateOut(page, many=True).data)


class FlowRunViewSet(_RunViewSet):
    queryset = FlowRun.objects.select_related("flow")
    serializer_class = api.FlowRunOut
    filterset_class = api_filters.FlowRunFilter
    kind = "flow"
    state_model = FlowRunState

    @extend_schema(request=api.FlowRunIn, responses={201: inline_serializer(
        "FlowRunCreated", {"flow_run": api.FlowRunOut(), "orchestration": api.OrchestrationResultOut()})})
    def create(self, request: Request) -> Response:
        """Create a flow run in its first state (default Pending), through the flow policy."""
        data = _validated(api.FlowRunIn, request.data).validated_data
        flow_id = data.pop("flow_id", None) or services.flow_get_or_create(name=data.pop("flow_name")).id
        data.pop("flow_name", None)
        state = data.pop("state", None) or State(type=StateType.PENDING)
        name = data.pop("name", None) or services.friendly_run_name()
        policy = data.pop("empirical_policy", None)
        _must_exist(Flow, flow_id, "flow", "create it with POST /api/flows/ or pass flow_name")
        _must_exist(FlowRun, data.get("parent_flow_run_id"), "parent flow run")
        run, result = services.flow_run_create(flow_id=flow_id, name=name, state=state,
                                               empirical_policy=policy, **data)  # fmt: skip
        return _created_response(FlowRun.objects.select_related("flow").get(pk=run.pk), api.FlowRunOut, result)


    @extend_schema(request=None, responses=api.OrchestrationResultOut)
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    def cancel(self, request: Request, pk: str) -> Response:
        """Cancel the run: one that has not started is Cancelled at once; a running one goes
        Cancelling, and the process running it stops it and ends it Cancelled. A finished run: 400."""
        result = services.flow_run_cancel(flow_run_id=_run_id(pk, "flow run"), by=request.user.get_username() or "the API")
        return _answer(result)

    @extend_schema(request=api.PauseIn, responses=api.PauseOut)
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    def pause(self, request: Request, pk: str) -> Response:
        """A running flow's code pauses its run until resumed (or suspends it: `reschedule`)."""
        data = _validated(api.PauseIn, request.data).validated_data
        answer = pauses.flow_run_pause(flow_run_id=_run_id(pk, "flow run"), **data)
        return Response({"orchestration": answer.result.to_dict(), "resumed": answer.resumed, "value": answer.value})

    @extend_schema(request=api.ResumeIn, responses=api.OrchestrationResultOut)
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    def resume(self, request: Request, pk: str) -> Response:
        """Resume a Paused run with the input it waits for (400 naming what does not match its schema)."""
        data = _validated(api.ResumeIn, request.data).validated_data
        by = request.user.get_username() or "the API"
        return _answer(pauses.flow_run_resume(flow_run_id=_run_id(pk, "flow run"), run_input=data["run_input"], by=by))

    @extend_schema(request=api.FlowRunClaimIn, responses=api.FlowRunClaimOut)
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    def claim(self, request: Request, pk: str) -> Response:
        """An agent claims a deployment's released run before running it: claimed (with what to
        run), held (another live agent has it: drop the message) or finished."""
        data = _validated(api.FlowRunClaimIn, request.data).validated_data
        found = agents.flow_run_claim(flow_run_id=_run_id(pk, "flow run"), timeout=settings.RUNWAY_HEARTBEAT_TIMEOUT,
                                      **data)  # fmt: skip
        return Response({"status": found.status, "reason": found.reason, "run": found.run})

    @extend_schema(request=api.HeartbeatIn, responses=inline_serializer("FlowRunsHeld", {"held": serializers.IntegerField()}))
    @action(detail=False, methods=["post"], filter_backends=[], pagination_class=None)
    def heartbeat(self, request: Request) -> Response:
        """An agent is alive and still runs these flow runs."""
        data = _validated(api.HeartbeatIn, request.data).validated_data
        return Response({"held": agents.flow_run_heartbeat(flow_run_ids=data["ids"], worker=data["worker"])})

    @extend_schema(request=api.ProcessExitedIn,
                   responses=inline_serializer("ProcessExited", {"state_name": serializers.CharField()}))  # fmt: skip
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    def process_exited(self, request: Request, pk: str) -> Response:
        """The agent's process for the run ended; a run it left unfinished is Crashed (and retried if it may be)."""
        data = _validated(api.ProcessExitedIn, request.data).validated_data
        name = agents.flow_run_process_exited(flow_run_id=_run_id(pk, "flow run"), **data)
        return Response({"state_name": name})


class TaskRunViewSet(_RunViewSet):
    queryset = TaskRun.objects.all()
    serializer_class = api.TaskRunOut
    filterset_class = api_filters.TaskRunFilter
    kind = "task"
    state_model = TaskRunState

    @extend_schema(request=api.TaskRunIn, responses={201: inline_serializer(
        "TaskRunCreated", {"task_run": api.TaskRunOut(), "orchestration": api.OrchestrationResultOut()})})
    def create(self, request: Request) -> Response:
        """Create a task run (default Pending), or return the run its flow run already has under
        (task_key, dynamic_key); with `then`, propose that state in the same transaction."""
        data = _validated(api.TaskRunIn, request.data).validated_data
        _must_exist(FlowRun, data.get("flow_run_id"), "flow run")
        state = data.pop("state", None) or State(type=StateType.PENDING)
        run, result = services.task_run_create(
            state=state, run_id=data.pop("id", None), flow_run_id=data.pop("flow_run_id", None), **data
        )
        return _created_response(TaskRun.objects.get(pk=run.pk), api.TaskRunOut, result)

    @extend_schema(
        parameters=[OpenApiParameter("ids", str, required=True, description="Up to 100 task run ids, comma-separated"),
                    OpenApiParameter("final", bool, description="true: only the runs whose state is final")],
        responses={200: {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/StateOut"}}},
    )
    @action(detail=False, filter_backends=[], pagination_class=None)
    def current_states(self, request: Request) -> Response:
        """The current state of each listed task run, with its result reference: {id: state}.
        How a flow watches the runs it sent to workers."""
        text = request.query_params.get("ids", "")
        try:
            ids = [UUID(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise ValidationError({"ids": [f"not a comma-separated list of UUIDs: {text[:80]!r}"]}) from None
        if not ids or len(ids) > 100:
            raise ValidationError({"ids": ["give 1 to 100 task run ids, comma-separated"]})
        final_only = request.query_params.get("final", "").lower() in ("1", "true", "yes")
        states = selectors.task_run_current_states(task_run_ids=ids, final_only=final_only)
        return Response({str(run_id): state.to_dict() for run_id, state in states.items()})

    @extend_schema(
        parameters=[OpenApiParameter("flow_run", OpenApiTypes.UUID, required=True),
                    OpenApiParameter("since", OpenApiTypes.DATETIME, description="server time; omit for all")],
        responses=inline_serializer("FinalState", {"id": serializers.UUIDField(), "state": api.StateOut()}, many=True),
    )
    @action(detail=False, filter_backends=[], pagination_class=None)
    def final_states(self, request: Request) -> Response:
        """A flow run's task runs whose state became final at or after `since`, oldest first, with
        their result references: how a flow waits on the runs it sent to workers."""
        params = _validated(api.FinalStatesIn, request.query_params).validated_data
        found = selectors.task_run_final_states_since(flow_run_id=params["flow_run"], since=params.get("since"))
        return Response([{"id": str(run_id), "state": state.to_dict()} for run_id, state in found])

    @extend_schema(request=api.ClaimIn, responses=api.ClaimOut)
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    def claim(self, request: Request, pk: str) -> Response:
        """A worker claims the run before running it: claimed (run it), held (another live worker
        has it: drop the message) or finished. A run whose worker went quiet is Crashed first.
        With `then` (Running), a claimed run is also proposed that state, in the same transaction."""
        data = _validated(api.ClaimIn, request.data).validated_data
        then, run_id = data.pop("then", None), _run_id(pk, "task run")
        if then is None:
            found = claims.task_run_claim(task_run_id=run_id, timeout=settings.RUNWAY_HEARTBEAT_TIMEOUT, **data)
            return Response({"status": found.status, "reason": found.reason})
        found, answer = claims.task_run_claim_and_start(task_run_id=run_id, state=then,
                                                        timeout=settings.RUNWAY_HEARTBEAT_TIMEOUT, **data)  # fmt: skip
        started = {"orchestration": answer.to_dict()} if answer else {}
        return Response({"status": found.status, "reason": found.reason, **started})

    @extend_schema(request=api.ReleaseIn,
                   responses=inline_serializer("Released", {"released": serializers.BooleanField()}))  # fmt: skip
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    def release(self, request: Request, pk: str) -> Response:
        """A worker gives back a run it claimed but must not start yet (a retry delay, a full
        concurrency limit): the next worker its message reaches may claim it."""
        worker = _validated(api.ReleaseIn, request.data).validated_data["worker"]
        return Response({"released": claims.task_run_release(task_run_id=_run_id(pk, "task run"), worker=worker)})

    @extend_schema(request=api.HeartbeatIn, responses=inline_serializer("Held", {"held": serializers.IntegerField()}))
    @action(detail=False, methods=["post"], filter_backends=[], pagination_class=None)
    def heartbeat(self, request: Request) -> Response:
        """A worker is alive and still runs these task runs."""
        data = _validated(api.HeartbeatIn, request.data).validated_data
        return Response({"held": claims.task_run_heartbeat(task_run_ids=data["ids"], worker=data["worker"])})

    @extend_schema(request=api.SweepIn, responses=inline_serializer("Resend", {"resend": serializers.ListField()}))
    @action(detail=False, methods=["post"], filter_backends=[], pagination_class=None)
    def sweep_lost(self, request: Request) -> Response:
        """Crash the runs (of `ids`, or all) whose worker went quiet, retrying those that may be:
        answers the messages to send again."""
        ids = _validated(api.SweepIn, request.data).validated_data.get("ids")
        resend = claims.task_runs_sweep_lost(timeout=settings.RUNWAY_HEARTBEAT_TIMEOUT, task_run_ids=ids)
        return Response({"resend": resend})

    @extend_schema(request=api.TaskRunIn(many=True), responses={201: api.TaskRunBatchOut(many=True)})
    @action(detail=False, methods=["post"], filter_backends=[], pagination_class=None)
    def batch(self, request: Request) -> Response:
        """Create up to 500 task runs in one transaction (the runs of a `.map()`): a JSON list of
        what `POST /api/task_runs/` takes. Answers, in order, each run's id and orchestration result."""
        items = _validated(api.TaskRunIn, request.data, many=True, max_length=api.MAX_TASK_RUNS_PER_REQUEST,
                           allow_empty=False).validated_data  # fmt: skip
        _must_exist(FlowRun, {item["flow_run_id"] for item in items if item.get("flow_run_id")}, "flow run")
        runs = []
        for item in items:
            item["state"] = item.get("state") or State(type=StateType.PENDING)
            item["run_id"] = item.pop("id", None)
            item.setdefault("flow_run_id", None)
            runs.append(item)
        answers = services.task_runs_create(runs=runs)
        body = [{"id": str(run_id), "orchestration": result.to_dict()} for run_id, result in answers]
        return Response(body, status=status.HTTP_201_CREATED)


def _refused(result: OrchestrationResult, asked_at: datetime, proposed: State) -> bool:
    """A rejection that wrote nothing and is not the replay of an earlier proposal: an illegal transition.

    A state written in answer to a proposal with a transition key (or replayed to its
    repeat) carries that key; any other state was not written for it, even one
    stamped during the request (a concurrent proposal's). Without a key, nothing was
    written when the state the run is in is older than the request.
    """
    if result.status != SetStateStatus.REJECT or result.state is None or result.state.timestamp is None:
        return False
    key = proposed.details.transition_key
    if key:
        return result.state.details.transition_key != key
    return result.state.timestamp < asked_at


def _created_response(run: FlowRun | TaskRun, serializer: type, result: OrchestrationResult) -> Response:
    key = "flow_run" if isinstance(run, FlowRun) else "task_run"
    return Response({key: serializer(run).data, "orchestration": result.to_dict()}, status=status.HTTP_201_CREATED)


def _must_exist(model: type, ids: UUID | set[UUID] | None, label: str, fix: str = "") -> None:
    """A 404 naming the missing id, instead of a foreign-key failure at commit."""
    wanted = {ids} if isinstance(ids, UUID) else set(ids or ())
    if not wanted:
        return
    found = set(model.objects.filter(pk__in=wanted).values_list("pk", flat=True))
    for missing in wanted - found:
        raise NotFound(f"{label} {missing} does not exist" + (f"; {fix}" if fix else ""))


class LogViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    queryset = Log.objects.all()
    serializer_class = api.LogOut
    filterset_class = api_filters.LogFilter
    ordering_fields = ["timestamp"]
    ordering = ["timestamp", "id"]

    @extend_schema(
        request=api.LogIn(many=True),
        responses={201: inline_serializer("LogsCreated", {"created": serializers.IntegerField()})},
    )
    def create(self, request: Request) -> Response:
        """Store a batch of log lines: a JSON list of at most 1,000 lines. With an `Idempotency-Key`
        header, a batch already stored under that key is not stored again (`created` is then 0)."""
        batch = _validated(api.LogIn, request.data, many=True, max_length=api.MAX_LOGS_PER_REQUEST, allow_empty=False)
        _must_exist(FlowRun, {line["flow_run_id"] for line in batch.validated_data if line.get("flow_run_id")}, "flow run")
        _must_exist(TaskRun, {line["task_run_id"] for line in batch.validated_data if line.get("task_run_id")}, "task run")
        created = services.logs_create(logs=batch.validated_data, batch_key=request.headers.get("Idempotency-Key"))
        return Response({"created": created}, status=status.HTTP_201_CREATED)
