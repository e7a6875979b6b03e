from django.apps import AppConfig


class UiConfig(AppConfig):
    name = "orchestrator.ui"
    label = "ui"
    verbose_name = "Web UI"
