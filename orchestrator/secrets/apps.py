from django.apps import AppConfig


class SecretsConfig(AppConfig):
    name = "orchestrator.secrets"
    label = "secrets"
    verbose_name = "Secrets"
    default_auto_field = "django.db.models.BigAutoField"
