"""Tokens in the admin: created here, the secret is shown once in a message; revoked by an action."""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest

from orchestrator.accounts.models import ApiToken
from orchestrator.accounts.services import token_create, token_revoke


class ApiTokenForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ["user", "name", "scope"]

    def clean(self) -> dict:
        """One active token per user and name (the constraint's condition is not checked by the form)."""
        data = super().clean()
        taken = ApiToken.objects.filter(user=data.get("user"), name=data.get("name"), revoked__isnull=True)
        if self.instance.pk is None and data.get("user") and taken.exists():
            raise forms.ValidationError(f"{data['user']} already has an active token named {data['name']!r}; "
                                        "choose another name or revoke that one first")  # fmt: skip
        return data


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    form = ApiTokenForm
    list_display = ["name", "user", "prefix", "scope", "created", "last_used", "revoked"]
    list_filter = ["scope", ("revoked", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "user__username"]
    readonly_fields = ["prefix", "created", "last_used", "revoked"]
    fields = ["user", "name", "scope", "prefix", "created", "last_used", "revoked"]
    actions = ["revoke"]

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> list[str]:
        """A token's owner, name and scope are fixed once made: revoke it and make another."""
        return self.readonly_fields + (["user", "name", "scope"] if obj else [])

    def get_form(self, request: HttpRequest, obj: ApiToken | None = None, **kwargs):
        """Only a superuser makes tokens for others: a token acts with all its owner's rights."""
        form = super().get_form(request, obj, **kwargs)
        if obj is None and not request.user.is_superuser and "user" in form.base_fields:
            form.base_fields["user"].queryset = form.base_fields["user"].queryset.filter(pk=request.user.pk)
        return form

    def save_model(self, request: HttpRequest, obj: ApiToken, form, change: bool) -> None:
        if change:
            return
        token, raw = token_create(user=obj.user, name=obj.name, scope=obj.scope)
        obj.pk, obj.prefix, obj.digest, obj.created = token.pk, token.prefix, token.digest, token.created
        obj._state.adding = False
        self.message_user(
            request, f"Token {token.name!r} created. Copy it now, it will not be shown again: {raw}", messages.WARNING
        )

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request: HttpRequest, queryset) -> None:
        for token in queryset.filter(revoked__isnull=True):
            token_revoke(token=token)
        self.message_user(request, "Revoked.", messages.SUCCESS)

    def has_delete_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return False  # revoke instead: the row records who had access
