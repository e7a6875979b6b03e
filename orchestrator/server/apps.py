from django.apps import AppConfig


class ServerConfig(AppConfig):
    name = "orchestrator.server"
    label = "server"
    verbose_name = "Server"
