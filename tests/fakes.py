"""An in-memory backend for unit tests of the task logic only; real targets prove the features."""
from workers.backends.base import Backend, BackendError
from zones.models import Zone
from zones.services import pools, writes


class FakeBackend(Backend):
    zones: dict[str, set] = {}  # target name -> zone names it has
    failing: set = set()  # target names that fail every call
    calls: list = []

    def __init__(self, name, options, masters):
        super().__init__(name, options, masters)

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


def make_pool(threshold=100, targets=("t1", "t2"), nameservers=None):
    """The default pool on fake targets; its nameservers are named like the targets they mirror."""
    nameservers = targets if nameservers is None else nameservers
    return pools.save_pool(
        None, name="default", threshold_percentage=threshold,
        ns_records=[{"hostname": "ns1.example.net.", "priority": 1}],
        targets=[{"name": t, "type": "fake", "masters": ["127.0.0.1:5354"]} for t in targets],
        nameservers=[{"host": n, "port": 53} for n in nameservers],
    )


def run(django_capture_on_commit_callbacks, fn, *args, **kwargs):
    """Call a service as the API does, run what it enqueued on commit, and return the zone reloaded."""
    with django_capture_on_commit_callbacks(execute=True):
        result = fn(*args, **kwargs)
    return Zone.objects.get(id=result.id if isinstance(result, Zone) else result.zone_id)


def one_of_everything() -> dict:
    """A pool, a zone with a recordset, a TLD, a blacklist, quotas, and the tokens of a member and an
    admin: what the API fuzzers (tests/test_api_fuzz.py, bench/fuzz_api.py) aim their requests at.
    {"keys": {role: key}, "ids": {path parameter: value}}."""
    from zones import accounts, quotas, reserved

    pool = pools.save_pool(None, name="default", ns_records=[{"hostname": "ns1.example.net.", "priority": 1}])
    zone = writes.create_zone(project_id="p1", name="fuzz.example.", email="hostmaster@fuzz.example")
    recordset = writes.create_recordset(zone.id, name="www", type="A", records=["192.0.2.1"])
    member, admin = accounts.api_user("alice", "p1"), accounts.api_user("root", "ops", accounts.Role.ADMIN)
    keys = {"member": accounts.issue_token(member), "admin": accounts.issue_token(admin)}
    spare = accounts.issue_token(member)  # the one a DELETE /v2/tokens/{id} may revoke
    quotas.set_quotas("p1", {"zones": 50})
    ids = {"zone_id": zone.id, "recordset_id": recordset.id, "pool_id": pool.id, "project_id": "p1",
           "tld_id": reserved.save_tld(None, name="example").id,
           "blacklist_id": reserved.save_blacklist(None, pattern=r"^evil\.").id,
           "token_id": accounts.find_token(spare).id, "target_id": "bind-1"}
    return {"keys": keys, "ids": {k: str(v) for k, v in ids.items()}}
