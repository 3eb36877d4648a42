from django.apps import AppConfig
from django.core.signals import setting_changed


class TranscriptionConfig(AppConfig):
    name = "transcription"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Connect the cache resets (imported here: the app registry must be ready)."""
        from transcription.signals import reset_setting_caches

        setting_changed.connect(reset_setting_caches)
