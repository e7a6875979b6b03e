"""The notifications page: rules (create, enable, disable, send a test, delete) and their latest deliveries."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from orchestrator.exceptions import InvalidInput
from orchestrator.notifications import selectors, services
from orchestrator.notifications.forms import NewNotificationRuleForm
from orchestrator.ui.views.common import act

RULES_SHOWN = 200
DELIVERIES_SHOWN = 50
VERBS = ("enable", "disable", "test", "delete")


@login_required
def notifications_page(request: HttpRequest) -> HttpResponse:
    form = NewNotificationRuleForm(request.POST or None, initial={"states": ["Failed", "Crashed"], "enabled": True})
    if request.method == "POST" and form.is_valid():
        try:
            rule = services.notification_rule_create(**form.service_values)
        except InvalidInput as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, f"Created notification rule {rule.name!r}; send a test to check it")
            return redirect("ui:notifications")
    rules = [selectors.rule_summary(rule) for rule in selectors.rule_list()[:RULES_SHOWN]]
    deliveries = [selectors.delivery_summary(d) for d in selectors.delivery_list()[:DELIVERIES_SHOWN]]
    return render(request, "ui/notifications.html", {"rules": rules, "deliveries": deliveries, "form": form},
                  status=400 if request.method == "POST" else 200)  # fmt: skip


@login_required
@require_POST
def notification_action(request: HttpRequest, rule_id: int, verb: str) -> HttpResponse:
    """The buttons of a rule's row: enable, disable, test, delete."""
    if verb not in VERBS:
        raise Http404(f"no action {verb!r} on notification rules; they have {', '.join(VERBS)}")

    def run() -> str:
        rule = services.notification_rule_get(ref=rule_id)
        if verb in ("enable", "disable"):
            services.notification_rule_set_enabled(ref=rule.pk, enabled=verb == "enable")
            return f"{verb.title()}d notification rule {rule.name!r}"
        if verb == "test":
            services.notification_rule_test(ref=rule.pk)
            return f"Sent a test message of {rule.name!r} to the workers; its delivery is listed below"
        services.notification_rule_delete(ref=rule.pk)  # verb == "delete"
        return f"Deleted notification rule {rule.name!r}"

    return act(request, run, "/notifications/")
