"""/api/notifications/: notification rules, their deliveries, and test messages.

  GET    /api/notifications/                  list, by name
  POST   /api/notifications/                  create (201): {"name", "channel", "target", "states", ...}
  GET    /api/notifications/{id}/             one rule
  PUT    /api/notifications/{id}/             replace its fields (as create); PATCH: change some
  DELETE /api/notifications/{id}/             delete it and its deliveries (204)
  GET    /api/notifications/{id}/deliveries/  its deliveries, newest first (filter: status)
  POST   /api/notifications/{id}/test/        a test message, sent by a worker (202, the delivery)

Webhook targets are shown without their path (a Slack URL is a credential), and
secrets never: `has_secret` says whether bodies are signed.
"""
from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from orchestrator.api.pagination import Cursor
from orchestrator.api.serializers import StrictSerializer
from orchestrator.notifications import selectors, services
from orchestrator.notifications.models import Channel, DeliveryStatus
from orchestrator.notifications.vocabulary import STATE_CHOICES


def _names(help_text: str) -> serializers.ListField:
    return serializers.ListField(child=serializers.CharField(max_length=255), required=False, max_length=100,
                                 help_text=help_text)  # fmt: skip


class NotificationRuleIn(StrictSerializer):
    name = serializers.CharField(max_length=services.MAX_NAME_LENGTH)
    channel = serializers.ChoiceField(choices=Channel.choices)
    target = serializers.CharField(max_length=2000, help_text="webhook/slack: URL; email: comma-separated addresses; "
                                                              "callable: module:function")  # fmt: skip
    states = serializers.ListField(child=serializers.CharField(max_length=64), min_length=1, max_length=100,
                                   help_text=f"any of: {', '.join(STATE_CHOICES)}")  # fmt: skip
    flow_names = _names("only runs of these flows; empty: every flow")
    tags = _names("only runs with any of these tags; empty: any")
    deployments = _names("only runs of these deployments (flow/name or id); empty: any")
    secret = serializers.CharField(max_length=255, required=False, allow_blank=True, write_only=True,
                                   help_text="webhooks: HMAC-SHA256 key for X-Runway-Signature; \"\" removes it")  # fmt: skip
    title_template = serializers.CharField(max_length=500, required=False, allow_blank=True)
    body_template = serializers.CharField(max_length=20_000, required=False, allow_blank=True)
    enabled = serializers.BooleanField(required=False)


class NotificationRuleOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    enabled = serializers.BooleanField()
    channel = serializers.ChoiceField(choices=Channel.choices)
    target = serializers.CharField(help_text="A webhook's URL without its path and query.")
    has_secret = serializers.BooleanField()
    states = serializers.ListField(child=serializers.CharField())
    flow_names = serializers.ListField(child=serializers.CharField())
    tags = serializers.ListField(child=serializers.CharField())
    deployment_ids = serializers.ListField(child=serializers.CharField())
    title_template = serializers.CharField()
    body_template = serializers.CharField()
    sent_count = serializers.IntegerField(allow_null=True)
    failed_count = serializers.IntegerField(allow_null=True)
    created = serializers.DateTimeField()
    updated = serializers.DateTimeField()


class DeliveryOut(serializers.Serializer):
    id = serializers.UUIDField()
    rule_id = serializers.IntegerField()
    rule_name = serializers.CharField()
    flow_run_id = serializers.UUIDField(allow_null=True)
    flow_run_name = serializers.CharField(allow_null=True)
    state_id = serializers.UUIDField(allow_null=True)
    state_type = serializers.CharField(allow_null=True)
    state_name = serializers.CharField(allow_null=True)
    is_test = serializers.BooleanField()
    status = serializers.ChoiceField(choices=DeliveryStatus.choices)
    attempts = serializers.IntegerField()
    last_error = serializers.CharField(help_text="Why the last attempt failed.")
    response = serializers.CharField(help_text="What the channel answered when it was sent.")
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    created = serializers.DateTimeField()
    sent_at = serializers.DateTimeField(allow_null=True)
    updated = serializers.DateTimeField()


class _ByName(Cursor):
    ordering = "name"


class _NewestFirst(Cursor):
    ordering = "-created"


class NotificationRuleViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = NotificationRuleOut
    pagination_class = _ByName
    filter_backends: list = []
    lookup_value_regex = "[0-9]+"

    def get_queryset(self):
        return selectors.rule_list()

    def list(self, request: Request) -> Response:
        """Rules by name, with how many of their deliveries were sent and how many failed."""
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([selectors.rule_summary(rule) for rule in page])

    @extend_schema(request=NotificationRuleIn, responses={201: NotificationRuleOut})
    def create(self, request: Request) -> Response:
        """Create a rule (400 names what is wrong: an unknown state, a refused webhook host, a taken name)."""
        data = _valid(request.data)
        rule = services.notification_rule_create(**data)
        return Response(self._out(rule.pk), status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(self._out(pk))

    @extend_schema(request=NotificationRuleIn, responses=NotificationRuleOut)
    def update(self, request: Request, pk: str) -> Response:
        """Replace the rule's fields as create takes them (a secret left out is kept)."""
        data = _valid(request.data)
        defaults = {"flow_names": [], "tags": [], "deployments": [], "title_template": "", "body_template": "", "enabled": True}
        services.notification_rule_update(ref=pk, **{**defaults, **data})
        return Response(self._out(pk))

    @extend_schema(request=NotificationRuleIn(partial=True), responses=NotificationRuleOut)
    def partial_update(self, request: Request, pk: str) -> Response:
        """Change the fields given."""
        services.notification_rule_update(ref=pk, **_valid(request.data, partial=True))
        return Response(self._out(pk))

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str) -> Response:
        services.notification_rule_delete(ref=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses=DeliveryOut(many=True), parameters=[
        OpenApiParameter("status", str, enum=DeliveryStatus.values, description="only deliveries in this status")])
    @action(detail=True, methods=["get"], pagination_class=_NewestFirst)
    def deliveries(self, request: Request, pk: str) -> Response:
        """The rule's deliveries, newest first: sent, failed (with the reason), pending (with the next attempt)."""
        wanted = request.query_params.get("status") or None
        if wanted is not None and wanted not in DeliveryStatus.values:
            raise ValidationError({"status": [f"unknown status {wanted!r}; use one of: {', '.join(DeliveryStatus.values)}"]})
        rule = services.notification_rule_get(ref=pk)
        page = self.paginate_queryset(selectors.delivery_list(rule_id=rule.pk, status=wanted))
        return self.get_paginated_response([selectors.delivery_summary(d) for d in page])

    @extend_schema(request=None, responses={202: DeliveryOut})
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str) -> Response:
        """Send a test message (a made-up failed run) through the rule, by a worker; the answer is its
        delivery, Pending: follow it in `deliveries`."""
        delivery = services.notification_rule_test(ref=pk)
        found = selectors.delivery_list().get(pk=delivery.pk)
        return Response(DeliveryOut(selectors.delivery_summary(found)).data, status=status.HTTP_202_ACCEPTED)

    def _out(self, pk: object) -> dict:
        rule = selectors.rule_list().get(pk=services.notification_rule_get(ref=str(pk)).pk)  # a 404 names it
        return NotificationRuleOut(selectors.rule_summary(rule)).data


def _valid(data: object, *, partial: bool = False) -> dict:
    serializer = NotificationRuleIn(data=data, partial=partial)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)
