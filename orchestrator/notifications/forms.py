"""The rule form the admin and the UI share: lists as comma-separated text, states as checkboxes.

It checks through the service (notification_rule_check), so a form says the same
things as the CLI and the API, next to the field concerned; saving goes through
the services too.
"""
from __future__ import annotations

from typing import Any

from django import forms

from orchestrator.notifications.models import Channel, NotificationRule
from orchestrator.notifications.services import RuleInvalid, notification_rule_check
from orchestrator.notifications.vocabulary import PLACEHOLDERS, STATE_CHOICES

_PLACEHOLDER_HELP = "Placeholders: " + ", ".join(f"{{{name}}}" for name in PLACEHOLDERS) + ". Empty: the default."


class CommaSeparated(forms.CharField):
    """A list typed as "a, b, c"."""

    def prepare_value(self, value: Any) -> Any:
        return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else value

    def to_python(self, value: Any) -> list[str]:
        return [item.strip() for item in str(super().to_python(value) or "").split(",") if item.strip()]


class NotificationRuleForm(forms.ModelForm):
    states = forms.MultipleChoiceField(choices=[(name, name) for name in STATE_CHOICES], widget=forms.CheckboxSelectMultiple(attrs={"class": "checks"}),
                                       help_text="Failed also fires on TimedOut; Scheduled on Late and AwaitingRetry.")  # fmt: skip
    flow_names = CommaSeparated(required=False, label="Flows", help_text="Comma-separated flow names; empty: every flow.")
    tags = CommaSeparated(required=False, help_text="Runs with any of these tags; empty: any run.")
    deployments = CommaSeparated(required=False, help_text="flow/deployment names or ids; empty: any run.")
    secret = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False),
                             help_text="Webhooks: signs each body (X-Runway-Signature). Left empty, a rule keeps its secret.")  # fmt: skip
    clear_secret = forms.BooleanField(required=False, help_text="Remove the secret: bodies are no longer signed.")

    class Meta:
        model = NotificationRule
        fields = ["name", "enabled", "channel", "target", "states", "flow_names", "tags", "deployments", "secret",
                  "clear_secret", "title_template", "body_template"]  # fmt: skip
        widgets = {"body_template": forms.Textarea(attrs={"rows": 3})}
        help_texts = {"target": "Webhook or Slack: the URL. Email: comma-separated addresses. Callable: module:function.",
                      "title_template": _PLACEHOLDER_HELP, "body_template": _PLACEHOLDER_HELP}  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["channel"].choices = Channel.choices
        if self.instance.pk:
            self.initial["deployments"] = self.instance.deployment_ids

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        values = {key: data[key] for key in ("name", "enabled", "channel", "target", "states", "flow_names", "tags",
                                             "deployments", "title_template", "body_template")}  # fmt: skip
        if data.get("secret") or data.get("clear_secret") or not self.instance.pk:
            values["secret"] = "" if data.get("clear_secret") else data.get("secret", "")
        try:
            self.checked = notification_rule_check(rule=self.instance if self.instance.pk else None, **values)
        except RuleInvalid as error:
            self.add_error(error.field if error.field in self.fields else None, str(error))
        self.service_values = values
        return data


class NewNotificationRuleForm(NotificationRuleForm):
    """For creating a rule only (the UI's form): there is no secret to clear yet."""

    clear_secret = None

    class Meta(NotificationRuleForm.Meta):
        fields = [name for name in NotificationRuleForm.Meta.fields if name != "clear_secret"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["secret"].help_text = "Webhooks: signs each body with HMAC-SHA256 (X-Runway-Signature)."
