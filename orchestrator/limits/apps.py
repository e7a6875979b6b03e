from django.apps import AppConfig


class LimitsConfig(AppConfig):
    name = "orchestrator.limits"
    label = "limits"
    verbose_name = "Concurrency limits"
    default_auto_field = "django.db.models.BigAutoField"
