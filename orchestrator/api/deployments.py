"""/api/work_queues/ and /api/deployments/.

  GET, POST /api/work_queues/                 list by priority; create {"name", "tags", "deployments", ...}
  GET, DELETE /api/work_queues/{name}/        one queue; delete one no deployment uses
  POST /api/work_queues/{name}/pause/, resume/, set_concurrency_limit/ {"concurrency_limit": n | null}
  GET, POST /api/deployments/                 list; create or deploy again (a code snapshot the SDK stored)
  GET, DELETE /api/deployments/{id}/          one deployment; delete it (its runs stay)
  POST /api/deployments/{id}/pause/, resume/, pause_schedule/, resume_schedule/ {"schedule_id": n}
  POST /api/deployments/{id}/runs/            run it {"parameters", "scheduled_time", "idempotency_key", ...}
"""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from orchestrator.api.pagination import Cursor
from orchestrator.api.permissions import DeploymentPermission, missing_deployment_permission
from orchestrator.api.serializers import FlowRunOut, StrictSerializer
from orchestrator.deployments import entrypoints, selectors, services
from orchestrator.deployments.models import Deployment, WorkQueue
from orchestrator.runs.models import FlowRun


class WorkQueueOut(serializers.ModelSerializer):
    filter_deployments = serializers.SerializerMethodField()

    class Meta:
        model = WorkQueue
        fields = ["name", "description", "filter_tags", "filter_deployments", "is_paused", "concurrency_limit",
                  "priority", "created", "updated"]  # fmt: skip

    def get_filter_deployments(self, queue: WorkQueue) -> list[str]:
        return [str(d) for d in queue.filter_deployments.select_related("flow")]


class WorkQueueIn(StrictSerializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    tags = serializers.ListField(child=serializers.CharField(max_length=255), required=False, default=list)
    deployments = serializers.ListField(child=serializers.CharField(), required=False, default=list,
                                        help_text="flow/deployment names or ids")  # fmt: skip
    concurrency_limit = serializers.IntegerField(min_value=0, max_value=services.MAX_INT, required=False, allow_null=True, default=None)
    priority = serializers.IntegerField(min_value=1, max_value=services.MAX_INT, required=False, default=1)
    paused = serializers.BooleanField(required=False, default=False)


class WorkQueueLimitIn(StrictSerializer):
    concurrency_limit = serializers.IntegerField(min_value=0, max_value=services.MAX_INT, allow_null=True)


class DeploymentOut(serializers.ModelSerializer):
    flow_name = serializers.CharField(source="flow.name")
    work_queue_name = serializers.CharField(source="work_queue.name")
    schedules = serializers.SerializerMethodField()

    class Meta:
        model = Deployment
        fields = ["id", "flow", "flow_name", "name", "entrypoint", "source", "code_path", "code_version",
                  "parameters", "parameter_schema", "tags", "description", "version", "work_queue_name",
                  "is_paused", "empirical_policy", "schedules", "created", "updated"]  # fmt: skip

    def get_schedules(self, deployment: Deployment) -> list[dict]:
        """Each as given, in words, with its next three times (UTC)."""
        return [selectors.schedule_summary(row) for row in deployment.schedules.all()]


class DeploymentIn(StrictSerializer):
    flow_name = serializers.CharField(max_length=255)
    name = serializers.CharField(max_length=255)
    entrypoint = serializers.CharField(max_length=1024)
    source = serializers.CharField(max_length=1024, required=False, allow_blank=True, default="")
    code_path = serializers.CharField(max_length=1024)
    code_version = serializers.RegexField(r"^[0-9a-f]{64}$", help_text="SHA-256 of the stored code, in hex")
    parameters = serializers.DictField(required=False, default=dict)
    parameter_schema = serializers.DictField(required=False, default=dict)
    tags = serializers.ListField(child=serializers.CharField(max_length=255), required=False, default=list)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    version = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    work_queue_name = serializers.CharField(max_length=200, required=False, allow_null=True, default=None)
    paused = serializers.BooleanField(required=False, default=False)
    schedules = serializers.ListField(child=serializers.DictField(), required=False, default=list, max_length=20,
                                      help_text='e.g. [{"cron": "0 9 * * *", "timezone": "Europe/Paris"}]')  # fmt: skip
    empirical_policy = serializers.DictField(required=False, default=dict,
                                             help_text='its runs\' retries: {"retries": 2, "retry_delay": 60}')  # fmt: skip


class DeploymentRunIn(StrictSerializer):
    parameters = serializers.DictField(required=False, default=dict, help_text="Over the deployment's defaults.")
    scheduled_time = serializers.DateTimeField(required=False, allow_null=True, default=None, help_text="Default: now.")
    idempotency_key = serializers.CharField(max_length=255, required=False, allow_null=True, default=None)
    parent_flow_run_id = serializers.UUIDField(required=False, allow_null=True, default=None)
    name = serializers.CharField(max_length=255, required=False, allow_null=True, default=None)


class ScheduleChoiceIn(StrictSerializer):
    schedule_id = serializers.IntegerField(required=False, allow_null=True, default=None,
                                           help_text="One schedule (ids are in the deployment's `schedules`); default: all")  # fmt: skip


class DeployedOut(serializers.Serializer):
    deployment = DeploymentOut()
    created = serializers.BooleanField(help_text="False: an existing deployment of this flow and name was replaced.")


class _ByPriority(Cursor):
    ordering = ("priority", "name")


class _ByCreation(Cursor):
    ordering = "-created"


class WorkQueueViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = WorkQueue.objects.all()
    serializer_class = WorkQueueOut
    pagination_class = _ByPriority
    filter_backends: list = []
    lookup_field = "name"
    lookup_value_regex = "[^/]+"

    def get_object(self) -> WorkQueue:
        return services.work_queue_get(name=self.kwargs["name"])

    @extend_schema(request=WorkQueueIn, responses={201: WorkQueueOut})
    def create(self, request: Request) -> Response:
        """Create a work queue (400 if the name is taken or not a valid Celery queue name)."""
        data = WorkQueueIn(data=request.data)
        data.is_valid(raise_exception=True)
        queue = services.work_queue_create(**data.validated_data)
        return Response(WorkQueueOut(queue).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, name: str) -> Response:
        """Delete a queue no deployment uses."""
        services.work_queue_delete(name=name)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=WorkQueueOut)
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, name: str) -> Response:
        """Release nothing from this queue until it is resumed."""
        return Response(WorkQueueOut(services.work_queue_set_paused(name=name, paused=True)).data)

    @extend_schema(request=None, responses=WorkQueueOut)
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, name: str) -> Response:
        return Response(WorkQueueOut(services.work_queue_set_paused(name=name, paused=False)).data)

    @extend_schema(request=WorkQueueLimitIn, responses=WorkQueueOut)
    @action(detail=True, methods=["post"])
    def set_concurrency_limit(self, request: Request, name: str) -> Response:
        """At most this many of the queue's flow runs running at once; null removes the limit."""
        data = WorkQueueLimitIn(data=request.data)
        data.is_valid(raise_exception=True)
        queue = services.work_queue_set_concurrency_limit(name=name, limit=data.validated_data["concurrency_limit"])
        return Response(WorkQueueOut(queue).data)


class DeploymentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = Deployment.objects.select_related("flow", "work_queue").prefetch_related("schedules")
    serializer_class = DeploymentOut
    pagination_class = _ByCreation
    filterset_fields = {"name": ["exact"], "flow__name": ["exact"], "work_queue__name": ["exact"], "is_paused": ["exact"]}
    ordering_fields = ["created", "name"]
    permission_classes = [DeploymentPermission]

    def get_object(self) -> Deployment:
        return services.deployment_get(ref=self.kwargs["pk"])

    @extend_schema(request=DeploymentIn, responses={200: DeployedOut, 201: DeployedOut})
    def create(self, request: Request) -> Response:
        """Register a deployment of code the SDK stored (`flow.deploy()` calls this): created (201),
        or deployed again under the same flow and name (200). Needs deployments.add_deployment, and
        change_deployment to replace one; the code must be under RUNWAY_DEPLOYMENT_ROOTS and the
        entrypoint a @flow of it (400 says what is wrong)."""
        data = DeploymentIn(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        replaces = Deployment.objects.filter(flow__name=fields["flow_name"], name=fields["name"].strip()).exists()
        if replaces and not request.user.has_perm("deployments.change_deployment"):
            raise PermissionDenied(missing_deployment_permission(request.user, "change"))
        entrypoints.deployment_code_check(code_path=fields["code_path"], entrypoint=fields["entrypoint"])
        deployment, created = services.deployment_create(**fields)
        body = {"deployment": DeploymentOut(deployment).data, "created": created}
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str) -> Response:
        """Delete the deployment; its runs stay."""
        services.deployment_delete(ref=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=DeploymentRunIn, responses={201: FlowRunOut})
    @action(detail=True, methods=["post"])
    def runs(self, request: Request, pk: str) -> Response:
        """Run the deployment: a Scheduled run (now, or at `scheduled_time`) that its work queue
        releases to an agent; parameters not given take the deployment's defaults (400 names a
        parameter the flow does not take, or a required one missing)."""
        data = DeploymentRunIn(data=request.data)
        data.is_valid(raise_exception=True)
        run = services.deployment_run_create(ref=pk, **data.validated_data)
        return Response(FlowRunOut(FlowRun.objects.select_related("flow").get(pk=run.pk)).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ScheduleChoiceIn, responses=DeploymentOut)
    @action(detail=True, methods=["post"])
    def pause_schedule(self, request: Request, pk: str) -> Response:
        """Pause one schedule, or all: no new runs, and their upcoming runs are removed."""
        return self._set_schedule(request, pk, active=False)

    @extend_schema(request=ScheduleChoiceIn, responses=DeploymentOut)
    @action(detail=True, methods=["post"])
    def resume_schedule(self, request: Request, pk: str) -> Response:
        return self._set_schedule(request, pk, active=True)

    def _set_schedule(self, request: Request, pk: str, *, active: bool) -> Response:
        data = ScheduleChoiceIn(data=request.data)
        data.is_valid(raise_exception=True)
        found = services.deployment_schedule_set_active(ref=pk, active=active, **data.validated_data)
        return Response(DeploymentOut(found).data)

    @extend_schema(request=None, responses=DeploymentOut)
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str) -> Response:
        return Response(DeploymentOut(services.deployment_set_paused(ref=pk, paused=True)).data)

    @extend_schema(request=None, responses=DeploymentOut)
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str) -> Response:
        return Response(DeploymentOut(services.deployment_set_paused(ref=pk, paused=False)).data)
