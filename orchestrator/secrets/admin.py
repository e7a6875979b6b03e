"""Secrets in the admin: set through the services (a password field, never filled in), shown masked."""
from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from orchestrator.exceptions import InvalidInput
from orchestrator.secrets import selectors, services
from orchestrator.secrets.models import Secret
from orchestrator.secrets.names import check_secret_name

MASK = "********"


class SecretForm(forms.ModelForm):
    value = forms.CharField(required=False, strip=False, widget=forms.PasswordInput(render_value=False),
                            help_text="Stored encrypted and never shown again. When changing a secret, "
                                      "leave it empty to keep the current value.")  # fmt: skip

    class Meta:
        model = Secret
        fields = ["name"]

    def clean_name(self) -> str:
        try:
            return check_secret_name(self.cleaned_data.get("name"))
        except InvalidInput as error:
            raise forms.ValidationError(str(error)) from None

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.instance.pk is None and not data.get("value"):
            self.add_error("value", "a new secret needs a value")
        return data


@admin.register(Secret)
class SecretAdmin(admin.ModelAdmin):
    form = SecretForm
    list_display = ["name", "masked_value", "created", "updated"]
    search_fields = ["name"]
    readonly_fields = ["masked_value", "created", "updated"]
    fields = ["name", "value", "masked_value", "created", "updated"]

    def get_queryset(self, request: HttpRequest):
        return selectors.secret_list()

    def get_readonly_fields(self, request: HttpRequest, obj: Secret | None = None) -> list[str]:
        """A secret's name is fixed once made (flows load it by name): add another and delete this one."""
        return self.readonly_fields + (["name"] if obj else [])

    def save_model(self, request: HttpRequest, obj: Secret, form: SecretForm, change: bool) -> None:
        value = form.cleaned_data.get("value")
        if not value:  # a change that keeps the value
            return
        secret, _ = services.secret_set(name=obj.name, value=value)
        obj.pk, obj.created, obj.updated = secret.pk, secret.created, secret.updated
        obj._state.adding = False

    def delete_model(self, request: HttpRequest, obj: Secret) -> None:
        services.secret_delete(name=obj.name)

    def delete_queryset(self, request: HttpRequest, queryset) -> None:
        for name in queryset.values_list("name", flat=True):
            services.secret_delete(name=name)

    @admin.display(description="Value")
    def masked_value(self, secret: Secret) -> str:
        return MASK if secret.pk else "-"
