"""Per-key rate limit: a token bucket kept in Redis, so every API process shares it."""

from __future__ import annotations

import uuid

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.commands.core import AsyncScript

# Refill by elapsed time (Redis's clock, the same for every API process), take one token if there is
# one, else say how long until there will be. One script call: atomic.
_TOKEN_BUCKET = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return tostring(wait)
"""


class RateLimiter:
    """``rate`` requests per second per key, in bursts of up to ``burst``."""

    def __init__(self, redis: Redis, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._script = redis.register_script(_TOKEN_BUCKET)
        self._async_scripts: dict[int, AsyncScript] = {}

    def wait_for(self, key_id: uuid.UUID) -> float:
        """0 when the request may go ahead (a token is taken), else the seconds until it could."""
        return float(self._script(keys=[_bucket(key_id)], args=[self.rate, self.burst]))

    async def wait_for_async(self, redis: AsyncRedis, key_id: uuid.UUID) -> float:
        """:meth:`wait_for` from the event loop, on ``redis`` (the same server)."""
        script = self._async_scripts.get(id(redis))
        if script is None:
            script = self._async_scripts[id(redis)] = redis.register_script(_TOKEN_BUCKET)
        return float(await script(keys=[_bucket(key_id)], args=[self.rate, self.burst]))


def _bucket(key_id: uuid.UUID) -> str:
    return f"judge:ratelimit:{key_id}"
