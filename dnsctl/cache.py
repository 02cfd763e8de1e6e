"""Django's Redis cache, with one redis.Redis client per connection pool instead of one per call.

Django's RedisCacheClient builds a new redis.Redis for every get, set, add or incr; each one fills
its table of ~200 response callbacks, which cost an API write more CPU than the Redis round trips
themselves (the token cache and the write throttle ask the cache three times per write). A client
is only a handle on its pool, and Django's caches are per thread, so keeping it changes nothing else.
"""
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient as DjangoRedisCacheClient


class RedisCacheClient(DjangoRedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = RedisCacheClient
