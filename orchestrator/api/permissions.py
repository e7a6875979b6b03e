"""Who may do what: any authenticated user reads; writes need a session or a write token; deployments,
which name the code agents run, are created and changed only by users with Django's model permissions
(deployments.add_deployment, change_deployment, delete_deployment; superusers have them all)."""
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


class DeploymentPermission(TokenScopePermission):
    """TokenScopePermission, and the model permission each deployment write needs (running one needs none)."""

    NEEDED = {"create": "add", "destroy": "delete", "pause": "change", "resume": "change",
              "pause_schedule": "change", "resume_schedule": "change"}  # fmt: skip

    def has_permission(self, request: Request, view) -> bool:
        if not super().has_permission(request, view):
            return False
        verb = self.NEEDED.get(getattr(view, "action", None) or "")
        if verb is None or request.user.has_perm(f"deployments.{verb}_deployment"):
            return True
        self.message = missing_deployment_permission(request.user, verb)
        return False


def missing_deployment_permission(user, verb: str) -> str:
    return (f"user {user.get_username()!r} may not {verb} deployments: that needs the permission "
            f"deployments.{verb}_deployment (give it in the admin, under Users, or use a superuser's token)")
