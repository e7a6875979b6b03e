"""Who may do what: any authenticated user reads; writes need a session or a write token."""
from __future__ import annotations

from rest_framework import permissions
from rest_framework.request import Request

from orchestrator.accounts.models import ApiToken, TokenScope


class TokenScopePermission(permissions.BasePermission):
    message = "this API token is read-only; writes need a token created with --scope write"

    def has_permission(self, request: Request, view) -> bool:
        token = request.auth
        if isinstance(token, ApiToken):  # authenticated by its token; the user row is not needed
            return request.method in permissions.SAFE_METHODS or token.scope == TokenScope.WRITE
        user = request.user
        return bool(user and user.is_authenticated)
