from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "workers"

    def ready(self):
        """Give zones' pool validation the backends' types and option checks (zones.backends)."""
        from workers import backends
        from zones import backends as zone_backends

        zone_backends.register(backends.backend_types, backends.target_problem)
