"""Notification rules and their deliveries in the admin: rules saved through the services (so the admin
checks what the CLI and API check), actions to enable, disable and send a test; deliveries read-only."""
from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from orchestrator.notifications import selectors, services
from orchestrator.notifications.forms import NotificationRuleForm
from orchestrator.notifications.models import NotificationDelivery, NotificationRule


@admin.register(NotificationRule)
class NotificationRuleAdmin(admin.ModelAdmin):
    form = NotificationRuleForm
    list_display = ["name", "enabled", "channel", "shown_target", "state_list", "run_filters", "sent", "failed", "updated"]
    list_filter = ["enabled", "channel"]
    search_fields = ["name", "target"]
    readonly_fields = ["created", "updated"]
    actions = ["enable", "disable", "send_test"]

    def get_queryset(self, request: HttpRequest):
        return selectors.rule_list()

    def save_model(self, request: HttpRequest, obj: NotificationRule, form: NotificationRuleForm, change: bool) -> None:
        if change:
            rule = services.notification_rule_update(ref=obj.pk, **form.service_values)
        else:
            rule = services.notification_rule_create(**form.service_values)
        obj.pk, obj.created, obj.updated, obj.secret = rule.pk, rule.created, rule.updated, rule.secret
        obj._state.adding = False

    @admin.display(description="Target")
    def shown_target(self, rule: NotificationRule) -> str:
        return selectors.shown_target(rule)

    @admin.display(description="States")
    def state_list(self, rule: NotificationRule) -> str:
        return ", ".join(rule.states)

    @admin.display(description="Runs of")
    def run_filters(self, rule: NotificationRule) -> str:
        parts = [f"flows: {', '.join(rule.flow_names)}"] * bool(rule.flow_names)
        parts += [f"tags: {', '.join(rule.tags)}"] * bool(rule.tags)
        parts += [f"{len(rule.deployment_ids)} deployment(s)"] * bool(rule.deployment_ids)
        return "; ".join(parts) or "any"

    @admin.display(description="Sent", ordering="sent_count")
    def sent(self, rule: NotificationRule) -> int:
        return rule.sent_count

    @admin.display(description="Failed", ordering="failed_count")
    def failed(self, rule: NotificationRule) -> str:
        link = reverse("admin:notifications_notificationdelivery_changelist") + f"?rule__id__exact={rule.pk}&status__exact=failed"
        return format_html('<a href="{}">{}</a>', link, rule.failed_count)

    @admin.action(description="Enable the selected rules")
    def enable(self, request: HttpRequest, queryset) -> None:
        for pk in queryset.values_list("pk", flat=True):
            services.notification_rule_set_enabled(ref=pk, enabled=True)
        self.message_user(request, f"Enabled {len(queryset)} rule(s).", messages.SUCCESS)

    @admin.action(description="Disable the selected rules")
    def disable(self, request: HttpRequest, queryset) -> None:
        for pk in queryset.values_list("pk", flat=True):
            services.notification_rule_set_enabled(ref=pk, enabled=False)
        self.message_user(request, f"Disabled {len(queryset)} rule(s): nothing more is sent for them.", messages.SUCCESS)

    @admin.action(description="Send a test message through the selected rules (by a worker)")
    def send_test(self, request: HttpRequest, queryset) -> None:
        for rule in queryset:
            services.notification_rule_test(ref=rule.pk)
        self.message_user(request, f"Sent {len(queryset)} test message(s) to the workers; the deliveries list shows "
                                   "how they went.", messages.SUCCESS)  # fmt: skip


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(admin.ModelAdmin):
    list_display = ["created", "rule", "run_link", "state_name", "is_test", "status", "attempts", "outcome", "sent_at"]
    list_filter = ["status", "is_test", "rule"]
    search_fields = ["rule__name", "flow_run__name", "last_error"]
    list_select_related = ["rule", "flow_run"]
    readonly_fields = ["rule", "flow_run", "state_id", "state_type", "state_name", "is_test", "status", "attempts",
                       "next_attempt_at", "claimed_at", "last_error", "response", "created", "updated", "sent_at"]  # fmt: skip

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # deliveries are made by state changes, and by a rule's test

    def has_change_permission(self, request: HttpRequest, obj: NotificationDelivery | None = None) -> bool:
        return False  # the record of what was sent

    @admin.display(description="Flow run")
    def run_link(self, delivery: NotificationDelivery) -> str:
        if delivery.flow_run is None:
            return "(test)" if delivery.is_test else "-"
        return format_html('<a href="{}">{}</a>', reverse("ui:flow-run", args=[delivery.flow_run_id]), delivery.flow_run.name)

    @admin.display(description="Outcome")
    def outcome(self, delivery: NotificationDelivery) -> str:
        return delivery.response if delivery.status == "sent" else delivery.last_error
