"""/api/ routes, the OpenAPI schema and its interactive docs."""
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from orchestrator.api import deployments, limits, notifications, secrets, views

router = DefaultRouter(trailing_slash=True)
# No `/api/flows.json/` twins: the API speaks JSON only, and the suffix reached actions that take no
# `format` argument (a 500 found by tests/security/test_session.py).
router.include_format_suffixes = False
router.register("flows", views.FlowViewSet, basename="flow")
router.register("flow_runs", views.FlowRunViewSet, basename="flow-run")
router.register("task_runs", views.TaskRunViewSet, basename="task-run")
router.register("logs", views.LogViewSet, basename="log")
router.register("work_queues", deployments.WorkQueueViewSet, basename="work-queue")
router.register("deployments", deployments.DeploymentViewSet, basename="deployment")
router.register("concurrency_limits", limits.ConcurrencyLimitViewSet, basename="concurrency-limit")
router.register("notifications", notifications.NotificationRuleViewSet, basename="notification")
router.register("secrets", secrets.SecretViewSet, basename="secret")

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include(router.urls)),
]
