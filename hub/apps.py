from django.apps import AppConfig


class HubConfig(AppConfig):
    name = "hub"
    verbose_name = "Interconnect Hub"

    def ready(self):
        from hub import signals  # noqa: F401
