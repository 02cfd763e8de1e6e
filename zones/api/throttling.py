"""Per-token rate limits on writes: one tenant's script cannot flood the pipeline every tenant shares."""
import hashlib
import logging

from django.conf import settings
from rest_framework.permissions import SAFE_METHODS
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from zones.api.auth import is_admin

log = logging.getLogger(__name__)


class WriteRateThrottle(SimpleRateThrottle):
    """At most `DEFAULT_THROTTLE_RATES["write"]` (API_WRITE_RATE) writes per token per window.

    Reads are free, and so are admins unless API_THROTTLE_ADMINS. Each token's count is one atomic
    increment in the cache, which every web worker shares, in fixed windows of the rate's period:
    DRF's own throttles read, append to and write back a list, so concurrent requests on several
    workers each slip past the limit. The cache key holds a digest, never the token. A cache that
    cannot be reached lets writes through: PostgreSQL takes them while Redis is down, so does the API.
    """

    scope = "write"

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)  # read now, so tests may change it

    def get_cache_key(self, request, view):
        if request.method in SAFE_METHODS or (is_admin(request) and not settings.API_THROTTLE_ADMINS):
            return None
        # request.auth is the token (any kind with a pk); a session login is counted by its user.
        caller = f"token:{request.auth.pk}" if request.auth is not None else f"user:{request.user.pk}"
        return self.cache_format % {"scope": self.scope, "ident": hashlib.sha256(caller.encode()).hexdigest()}

    def allow_request(self, request, view):
        key = self.get_cache_key(request, view) if self.rate else None
        if key is None:
            return True
        now = self.timer()
        window = int(now // self.duration)
        self.wait_seconds = (window + 1) * self.duration - now
        key = f"{key}:{window}"
        try:
            self.cache.add(key, 0, timeout=2 * self.duration)  # outlives its window: incr never recreates it
            count = self.cache.incr(key)
        except Exception as exc:  # noqa: BLE001 - any cache backend's outage
            log.warning("write rate limit not applied, the cache is unavailable: %s", exc)
            return True
        return count <= self.num_requests

    def wait(self):
        return self.wait_seconds
