from django.apps import AppConfig


class WorkersConfig(AppConfig):
    """The workers as a Django app: for the commands that load a flow's code (`deployment create`),
    which the orchestrator's own apps must not do (they never import the SDK)."""

    name = "workers"
    label = "workers"
    verbose_name = "Workers and agents"
