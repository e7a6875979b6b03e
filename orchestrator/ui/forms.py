"""Forms: a deployment's parameters as fields generated from its flow's JSON schema, and small
forms for limits, tokens, saved views and preferences."""
from __future__ import annotations

import json
from typing import Any

from django import forms

from orchestrator.accounts.models import TokenScope
from orchestrator.ui.models import Preference, SavedView

_SIMPLE = {"string": forms.CharField, "integer": forms.IntegerField, "number": forms.FloatField}


class ParametersForm(forms.Form):
    """One field per parameter of the flow: text, whole number, number, yes/no, a choice for an enum,
    JSON for anything else. Empty fields keep the deployment's default."""

    def __init__(self, schema: dict[str, Any], defaults: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.json_fields: set[str] = set()
        required = set(schema.get("required", []))
        for name, spec in (schema.get("properties") or {}).items():
            default = defaults.get(name, spec.get("default"))
            self.fields[name] = self._field(name, spec, default, name in required and name not in defaults)

    def _field(self, name: str, spec: dict[str, Any], default: Any, required: bool) -> forms.Field:
        label = spec.get("title") or name
        kind = spec.get("type")
        help_text = _describe(spec, default)
        if "enum" in spec:
            choices = [("", "(default)")] * (not required) + [(json.dumps(v), str(v)) for v in spec["enum"]]
            self.json_fields.add(name)
            return forms.ChoiceField(label=label, choices=choices, required=required, help_text=help_text)
        if kind == "boolean":
            choices = [("", "(default)"), ("true", "Yes"), ("false", "No")]
            self.json_fields.add(name)
            return forms.ChoiceField(label=label, choices=choices, required=required, help_text=help_text)
        if kind in _SIMPLE:
            return _SIMPLE[kind](label=label, required=required, help_text=help_text)
        self.json_fields.add(name)
        return forms.CharField(label=label, required=required, help_text=help_text + " (JSON)",
                               widget=forms.Textarea(attrs={"rows": 2}))  # fmt: skip

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        for name in self.json_fields:
            text = data.get(name)
            if text in (None, ""):
                continue
            try:
                data[name] = json.loads(text)
            except ValueError as error:
                self.add_error(name, f"not valid JSON: {error}")
        return data

    def parameters(self) -> dict[str, Any]:
        """The values given (empty fields left out, so the deployment's defaults apply)."""
        return {k: v for k, v in self.cleaned_data.items() if v not in (None, "")}


def _describe(spec: dict[str, Any], default: Any) -> str:
    kind = spec.get("type") or ("one of the listed values" if "enum" in spec else "any JSON value")
    words = f"Type: {kind}"
    if default is not None:
        words += f"; default {json.dumps(default)}"
    return words


class LimitForm(forms.Form):
    tag = forms.CharField(max_length=255)
    limit = forms.IntegerField(min_value=0, max_value=2**31 - 1, label="Concurrency limit")


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100)
    scope = forms.ChoiceField(choices=TokenScope.choices, initial=TokenScope.READ)


class SavedViewForm(forms.ModelForm):
    class Meta:
        model = SavedView
        fields = ["name", "page", "query"]
        widgets = {"page": forms.HiddenInput, "query": forms.HiddenInput}


class PreferenceForm(forms.ModelForm):
    class Meta:
        model = Preference
        fields = ["theme", "palette"]
        widgets = {"theme": forms.RadioSelect, "palette": forms.RadioSelect}


class QueueLimitForm(forms.Form):
    limit = forms.IntegerField(min_value=0, max_value=2**31 - 1, required=False, label="Concurrency limit",
                               help_text="Empty: no limit")  # fmt: skip
