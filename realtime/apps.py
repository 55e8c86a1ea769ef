from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # stats registers its report loop; schema teaches drf-spectacular our authenticator.
        from realtime import schema, signals, stats  # noqa: F401

        signals.connect()
