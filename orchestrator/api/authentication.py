"""API tokens in the `Authorization: Bearer <token>` header (sessions are DRF's own class)."""
from __future__ import annotations

from django.utils.functional import SimpleLazyObject
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from orchestrator.accounts.services import token_authenticate


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """Sets request.user to the token's owner and request.auth to the ApiToken."""

    keywords = ("bearer", "token")

    def authenticate(self, request: Request):
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0].lower() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("malformed Authorization header; send `Authorization: Bearer <token>`")
        token = token_authenticate(raw=header[1])
        if token is None:
            raise exceptions.AuthenticationFailed(
                "invalid or revoked API token; create one with `python manage.py token create`"
            )
        return SimpleLazyObject(lambda: token.user), token  # loaded only if a view reads it

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="runway"'


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = ApiTokenAuthentication
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "A Runway API token (rwy_...)."}
