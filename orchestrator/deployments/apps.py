from django.apps import AppConfig


class DeploymentsConfig(AppConfig):
    name = "orchestrator.deployments"
    label = "deployments"
    verbose_name = "Deployments and work queues"
    default_auto_field = "django.db.models.BigAutoField"
