"""The UI's pages (login required) and its live channel's HTTP fallback."""
from django.contrib.auth import views as auth_views
from django.urls import path, register_converter

from orchestrator.ui.views import account, deployments, live, notifications, runs


class FlowNameConverter:
    """A flow's name as it was given: any characters, slashes and line breaks included. (Django's
    `path` converter stops at a line break: a flow named with one, which the API and the SDK
    accept, made every page linking to it answer 500.)"""

    regex = r"[\s\S]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(FlowNameConverter, "flow_name")
app_name = "ui"

urlpatterns = [
    path("", runs.dashboard_page, name="dashboard"),
    path("login/", auth_views.LoginView.as_view(template_name="ui/login.html", redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("flows/", runs.flows_page, name="flows"),
    path("flows/<flow_name:name>/", runs.flow_page, name="flow"),
    path("flow-runs/", runs.flow_runs_page, name="flow-runs"),
    path("runs/<uuid:run_id>/", runs.flow_run_page, name="flow-run"),
    path("runs/<uuid:run_id>/cancel/", runs.flow_run_cancel_action, name="flow-run-cancel"),
    path("runs/<uuid:run_id>/resume/", runs.flow_run_resume_action, name="flow-run-resume"),
    path("runs/<uuid:run_id>/retry/", runs.flow_run_retry_action, name="flow-run-retry"),
    path("task-runs/", runs.task_runs_page, name="task-runs"),
    path("task-runs/<uuid:run_id>/", runs.task_run_page, name="task-run"),
    path("deployments/", deployments.deployments_page, name="deployments"),
    path("deployments/<uuid:deployment_id>/", deployments.deployment_page, name="deployment"),
    path("deployments/<uuid:deployment_id>/quick-run/", deployments.deployment_quick_run, name="deployment-quick-run"),
    path("deployments/<uuid:deployment_id>/run/", deployments.deployment_run_form, name="deployment-run"),
    path("deployments/<uuid:deployment_id>/pause/", deployments.deployment_pause, {"paused": True}, name="deployment-pause"),
    path("deployments/<uuid:deployment_id>/resume/", deployments.deployment_pause, {"paused": False}, name="deployment-resume"),
    path("work-queues/", deployments.work_queues_page, name="work-queues"),
    path("work-queues/<str:name>/", deployments.work_queue_page, name="work-queue"),
    path("work-queues/<str:name>/pause/", deployments.work_queue_pause, {"paused": True}, name="work-queue-pause"),
    path("work-queues/<str:name>/resume/", deployments.work_queue_pause, {"paused": False}, name="work-queue-resume"),
    path("work-queues/<str:name>/limit/", deployments.work_queue_limit, name="work-queue-limit"),
    path("concurrency-limits/", account.limits_page, name="limits"),
    path("concurrency-limits/delete/", account.limit_delete, name="limit-delete"),
    path("notifications/", notifications.notifications_page, name="notifications"),
    path("notifications/<int:rule_id>/<str:verb>/", notifications.notification_action, name="notification-action"),
    path("tokens/", account.tokens_page, name="tokens"),
    path("tokens/revoke/", account.token_revoke_action, name="token-revoke"),
    path("settings/", account.settings_page, name="settings"),
    path("views/", account.saved_view_create, name="saved-view-create"),
    path("views/<int:view_id>/delete/", account.saved_view_delete, name="saved-view-delete"),
    path("live/", live.live_changes, name="live"),
]
