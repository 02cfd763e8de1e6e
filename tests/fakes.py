"""An in-memory backend for unit tests of the task logic only; real targets prove the features."""
from workers.backends.base import Backend, BackendError


class FakeBackend(Backend):
    zones: dict[str, set] = {}  # target name -> zone names it has
    failing: set = set()  # target names that fail every call
    calls: list = []

    def __init__(self, name, options, masters):
        self.name, self.options, self.masters = name, options, masters

    def _call(self, op, zone_name):
        FakeBackend.calls.append((self.name, op, zone_name))
        if self.name in FakeBackend.failing:
            raise BackendError(f"target {self.name}: connection refused")
        return FakeBackend.zones.setdefault(self.name, set())

    def create_zone(self, zone_name):
        self._call("create", zone_name).add(zone_name)

    def update_zone(self, zone_name):
        self._call("update", zone_name).add(zone_name)

    def delete_zone(self, zone_name):
        self._call("delete", zone_name).discard(zone_name)

    @classmethod
    def reset(cls):
        cls.zones, cls.failing, cls.calls = {}, set(), []
