"""/api/concurrency_limits/: tag concurrency limits, by tag.

  GET    /api/concurrency_limits/         list, by tag, with how many slots are taken
  POST   /api/concurrency_limits/         {"tag", "concurrency_limit"}: create (201) or change (200)
  GET    /api/concurrency_limits/{tag}/   one limit and the task runs holding its slots
  DELETE /api/concurrency_limits/{tag}/   remove it (204)
"""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from orchestrator.api.pagination import Cursor
from orchestrator.api.serializers import StrictSerializer
from orchestrator.limits import selectors, services


class ConcurrencyLimitIn(StrictSerializer):
    tag = serializers.CharField(max_length=services.MAX_TAG_LENGTH)
    concurrency_limit = serializers.IntegerField(min_value=0, max_value=services.MAX_LIMIT)


class ConcurrencyLimitOut(serializers.Serializer):
    tag = serializers.CharField()
    concurrency_limit = serializers.IntegerField()
    active_count = serializers.IntegerField(help_text="Task runs with this tag Running now, each holding a slot.")
    created = serializers.DateTimeField()
    updated = serializers.DateTimeField()


class SlotOut(serializers.Serializer):
    task_run_id = serializers.UUIDField()
    task_run_name = serializers.CharField()
    flow_run_id = serializers.UUIDField(allow_null=True)
    acquired = serializers.DateTimeField()


class ConcurrencyLimitDetailOut(ConcurrencyLimitOut):
    active_slots = SlotOut(many=True)


class _ByTag(Cursor):
    ordering = "tag"


class ConcurrencyLimitViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = ConcurrencyLimitOut
    pagination_class = _ByTag
    filter_backends: list = []
    lookup_field = "tag"
    lookup_value_regex = "[^/]+"

    def get_queryset(self):
        return selectors.limit_list()

    def list(self, request: Request) -> Response:
        """Limits by tag."""
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([selectors.limit_summary(limit) for limit in page])

    @extend_schema(request=ConcurrencyLimitIn, responses={200: ConcurrencyLimitOut, 201: ConcurrencyLimitOut})
    def create(self, request: Request) -> Response:
        """Set a tag's limit: created (201), or changed if the tag had one (200)."""
        data = ConcurrencyLimitIn(data=request.data)
        data.is_valid(raise_exception=True)
        limit, created = services.concurrency_limit_create(tag=data.validated_data["tag"],
                                                          limit=data.validated_data["concurrency_limit"])  # fmt: skip
        body = selectors.limit_summary(limit, active_count=selectors.limit_detail(tag=limit.tag)["active_count"])
        return Response(ConcurrencyLimitOut(body).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(responses=ConcurrencyLimitDetailOut)
    def retrieve(self, request: Request, tag: str) -> Response:
        """One limit, with the task runs holding its slots, oldest first."""
        return Response(ConcurrencyLimitDetailOut(selectors.limit_detail(tag=tag)).data)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, tag: str) -> Response:
        """Remove the limit; runs waiting for its slots start when they next ask."""
        services.concurrency_limit_delete(tag=tag)
        return Response(status=status.HTTP_204_NO_CONTENT)
