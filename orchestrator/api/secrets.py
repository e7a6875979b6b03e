"""/api/secrets/: secrets by name. Values go in, and come out only through `reveal`.

  GET    /api/secrets/                 list, by name (names and times only)
  POST   /api/secrets/                 {"name", "value"}: create (201; 400 if the name is taken)
  GET    /api/secrets/{name}/          one secret, without its value
  PUT    /api/secrets/{name}/          {"value"}: set its value (201 created, 200 replaced)
  DELETE /api/secrets/{name}/          delete it (204)
  POST   /api/secrets/{name}/reveal/   {"name", "value"}: what the SDK calls; a write-scoped token only

Reveal is a POST so that a read-only token (GET only) can never read a value, and
its answer is marked `Cache-Control: no-store`.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from orchestrator.accounts.models import ApiToken, TokenScope
from orchestrator.api.pagination import Cursor
from orchestrator.api.serializers import StrictSerializer
from orchestrator.secrets import selectors, services
from orchestrator.secrets.crypto import SecretsKeyInvalid, SecretUndecryptable
from orchestrator.secrets.names import MAX_NAME_LENGTH


def _value_field() -> serializers.CharField:
    return serializers.CharField(write_only=True, trim_whitespace=False, max_length=services.MAX_VALUE_LENGTH,
                                 help_text="The value; stored encrypted, never answered except by reveal.")  # fmt: skip


class SecretIn(StrictSerializer):
    name = serializers.CharField(max_length=MAX_NAME_LENGTH, help_text="lowercase letters, digits, '-' and '_'")
    value = _value_field()


class SecretValueIn(StrictSerializer):
    value = _value_field()


class SecretOut(serializers.Serializer):
    name = serializers.CharField()
    created = serializers.DateTimeField()
    updated = serializers.DateTimeField()


class SecretValueOut(serializers.Serializer):
    name = serializers.CharField()
    value = serializers.CharField(help_text="The decrypted value.")


class SecretErrorOut(serializers.Serializer):
    code = serializers.CharField()
    detail = serializers.CharField()


class SecretUnreadable(exceptions.APIException):
    """The stored value opens with none of the server's keys (or RUNWAY_SECRETS_KEY is malformed):
    422, not a 5xx that clients would retry."""

    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "secret_unreadable"


class CanReveal(permissions.BasePermission):
    """A session (with its CSRF token), or a token created with --scope write."""

    message = ("a read-only API token cannot read secret values; reading one needs a token created with "
               "--scope write")  # fmt: skip

    def has_permission(self, request: Request, view) -> bool:
        if isinstance(request.auth, ApiToken):
            return request.auth.scope == TokenScope.WRITE
        return bool(request.user and request.user.is_authenticated)


_UNREADABLE = OpenApiResponse(SecretErrorOut, description="RUNWAY_SECRETS_KEY is malformed, or the stored value "
                                                            "opens with none of the server's keys.")  # fmt: skip


class _ByName(Cursor):
    ordering = "name"


class SecretViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = SecretOut
    pagination_class = _ByName
    filter_backends: list = []
    lookup_field = "name"
    lookup_value_regex = "[^/]+"  # the service names what is wrong with a bad name

    def get_queryset(self):
        return selectors.secret_list()

    def list(self, request: Request) -> Response:
        """Secrets by name: names and times, never values."""
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([selectors.secret_summary(secret) for secret in page])

    @extend_schema(request=SecretIn, responses={201: SecretOut, 422: _UNREADABLE})
    def create(self, request: Request) -> Response:
        """Create a secret (400 names a bad or taken name, or an empty value)."""
        data = _valid(SecretIn, request.data)
        with _keys_usable():
            secret, _ = services.secret_set(name=data["name"], value=data["value"], overwrite=False)
        return Response(SecretOut(selectors.secret_summary(secret)).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, name: str) -> Response:
        """One secret, without its value."""
        return Response(SecretOut(selectors.secret_summary(services.secret_get(name=name))).data)

    @extend_schema(request=SecretValueIn, responses={200: SecretOut, 201: SecretOut, 422: _UNREADABLE})
    def update(self, request: Request, name: str) -> Response:
        """Set the secret's value: created (201) or replaced (200)."""
        data = _valid(SecretValueIn, request.data)
        with _keys_usable():
            secret, created = services.secret_set(name=name, value=data["value"])
        return Response(SecretOut(selectors.secret_summary(secret)).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)  # fmt: skip

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, name: str) -> Response:
        """Delete the secret; flows that load it afterwards fail, naming it."""
        services.secret_delete(name=name)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={
        200: SecretValueOut,
        403: OpenApiResponse(SecretErrorOut, description="A read-only token: values need a write-scoped token."),
        422: _UNREADABLE,
    })  # fmt: skip
    @action(detail=True, methods=["post"], permission_classes=[CanReveal], pagination_class=None)
    def reveal(self, request: Request, name: str) -> Response:
        """The secret's decrypted value, for the SDK (`Secret.load(name).get()`); needs a write-scoped token."""
        with _keys_usable():
            value = services.secret_value(name=name, by=_who(request))
        return Response(SecretValueOut({"name": name, "value": value}).data, headers={"Cache-Control": "no-store"})


@contextmanager
def _keys_usable() -> Iterator[None]:
    """A value no key opens, or a malformed RUNWAY_SECRETS_KEY, answered 422 with the service's message."""
    try:
        yield
    except (SecretUndecryptable, SecretsKeyInvalid) as error:
        raise SecretUnreadable(str(error)) from None


def _valid(serializer_class: type[serializers.Serializer], data: object) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _who(request: Request) -> str:
    if isinstance(request.auth, ApiToken):
        return f"API token {request.auth.name!r} ({request.auth.prefix}) of user {request.user}"
    return f"user {request.user} (session)"
