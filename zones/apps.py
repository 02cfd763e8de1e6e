from django.apps import AppConfig


class ZonesConfig(AppConfig):
    name = "zones"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import accounts  # noqa: F401 - connects the token cache's invalidation to the models
