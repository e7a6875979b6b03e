"""Who may do what: any authenticated user reads; writes need a session or a write token."""
from __future__ import annotations

from rest_framework import permissions
from rest_framework.request import Request

from orchestrator.accounts.models import ApiToken, TokenScope


class TokenScopePermission(permissions.BasePermission):
    message = "this API token is read-only; writes need a token created with --scope write"

    def has_permission(self, request: Request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if request.method in permissions.SAFE_METHODS:
            return True
        token = request.auth
        return not isinstance(token, ApiToken) or token.scope == TokenScope.WRITE
