import functools
import math
import re

import redis
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from rest_framework.throttling import SimpleRateThrottle

from hub.models import APIToken

# One round trip instead of three (read both counters, then add or check-and-increment): the same
# decision as the Python below, taken atomically in Redis. ARGV: the last window's weight, the limit,
# the counter's lifetime. Returns both counters as read, and 1 if the request was counted (allowed).
_SLIDING_WINDOW = """
local previous = tonumber(redis.call('GET', KEYS[1]) or '0')
local current = tonumber(redis.call('GET', KEYS[2]) or '0')
if current + math.ceil(previous * tonumber(ARGV[1])) >= tonumber(ARGV[2]) then
    return {previous, current, 0}
end
if redis.call('INCR', KEYS[2]) == 1 then
    redis.call('EXPIRE', KEYS[2], ARGV[3])
end
return {previous, current, 1}
"""


@functools.cache
def _sliding_window_script():
    """The script on the default cache's Redis (its first server, where Django's cache writes)."""
    location = settings.CACHES["default"]["LOCATION"]
    location = re.split("[;,]", location)[0] if isinstance(location, str) else location[0]
    return redis.Redis.from_url(location).register_script(_SLIDING_WINDOW)


class PrincipalRateThrottle(SimpleRateThrottle):
    """One budget per API token, per logged-in user (session), or per client address (anonymous).

    A sliding window estimated from two fixed-window counters (this window's and the last one's,
    weighted by how much of the last one still overlaps the sliding window), rather than DRF's log
    of every request's time: the log is read, unpickled, pruned, pickled and written whole on every
    request (1,200 floats at the default rate), and concurrent requests overwrite each other's
    entries. Counters are atomic increments of a few bytes. The estimate rounds the last window's
    share up, so a client is never allowed more than the rate. On the Redis cache the counters are
    read, checked and incremented by one script: one round trip, and no request slips in between.
    """

    scope = "principal"

    def get_cache_key(self, request, view):
        if isinstance(request.auth, APIToken):
            ident = f"token:{request.auth.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            self.rate = self.THROTTLE_RATES["anon"]
            self.num_requests, self.duration = self.parse_rate(self.rate)
            ident = f"anon:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        now = self.timer()
        window = int(now // self.duration)
        self.elapsed = now - window * self.duration
        current_key, previous_key = f"{self.key}:{window}", f"{self.key}:{window - 1}"
        if isinstance(caches["default"], RedisCache):  # self.cache is the proxy of the default cache
            return self._allow_in_redis(previous_key, current_key)
        counts = self.cache.get_many([previous_key, current_key])
        self.previous, self.current = counts.get(previous_key, 0), counts.get(current_key, 0)
        if self.current + self._previous_share(self.elapsed) >= self.num_requests:
            return self.throttle_failure()
        self._count(current_key, exists=current_key in counts)
        return True

    def _allow_in_redis(self, previous_key: str, current_key: str) -> bool:
        weight = max(0.0, 1 - self.elapsed / self.duration)
        keys = [self.cache.make_and_validate_key(previous_key), self.cache.make_and_validate_key(current_key)]
        previous, current, counted = _sliding_window_script()(
            keys=keys, args=[repr(weight), self.num_requests, 2 * self.duration]
        )
        self.previous, self.current = previous, current
        return True if counted else self.throttle_failure()

    def _previous_share(self, elapsed: float) -> int:
        return math.ceil(self.previous * max(0.0, 1 - elapsed / self.duration))

    def _count(self, key: str, *, exists: bool) -> None:
        # Kept for two windows: the next window still weighs this one.
        if not exists and self.cache.add(key, 1, timeout=2 * self.duration):
            return
        try:
            self.cache.incr(key)
        except ValueError:  # expired (or evicted) between the read and now
            self.cache.add(key, 1, timeout=2 * self.duration)

    def wait(self):
        """Seconds until one more request fits, if no other request comes meanwhile."""
        remaining = self.duration - self.elapsed
        limit = self.num_requests
        if self.current >= limit:
            # Only in the next window, once this window's share has decayed below the limit.
            return remaining + self.duration * (1 - (limit - 1) / self.current)
        if self.previous:
            return max(0.0, self.duration * (1 - (limit - self.current - 1) / self.previous) - self.elapsed)
        return remaining
