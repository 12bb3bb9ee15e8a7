from django.apps import AppConfig


class SecurityConfig(AppConfig):
    name = "security"

    def ready(self):
        from security import (
            events,  # noqa: F401  (registers the event types)
            signals,  # noqa: F401  (connects the receivers)
        )
