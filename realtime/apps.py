from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here, not at the top: both need the app registry, which is ready only now.
        # Importing ``schema`` is how drf-spectacular learns our authenticator (its extensions
        # register themselves when their class is defined; that is the library's mechanism).
        from realtime.ops import schema, signals  # noqa: F401

        signals.connect()
