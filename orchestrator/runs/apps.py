from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "orchestrator.runs"
    label = "runs"
    verbose_name = "Runs"
    default_auto_field = "django.db.models.BigAutoField"
