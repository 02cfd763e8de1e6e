"""The shared cache (the token cache and the write throttle use it) on the tests' real Redis."""
import redis
from django.core.cache import caches

from dnsctl.cache import RedisCache


def test_the_redis_cache_keeps_one_client_per_pool(monkeypatch):
    cache = caches["default"]
    assert isinstance(cache, RedisCache)
    made = []
    init = redis.Redis.__init__
    monkeypatch.setattr(redis.Redis, "__init__", lambda self, *a, **kw: (made.append(self), init(self, *a, **kw))[1])
    cache.set("dnsctl-test:cache", 1, 30)
    assert cache.add("dnsctl-test:cache", 5, 30) is False
    assert cache.incr("dnsctl-test:cache") == 2
    assert cache.get("dnsctl-test:cache") == 2
    cache.delete("dnsctl-test:cache")
    assert cache.get("dnsctl-test:cache") is None
    assert len(made) <= 1  # Django's own client would have made one per call: six
