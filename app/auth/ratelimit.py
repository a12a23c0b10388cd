"""Rate limits as token buckets kept in Redis, so every API process shares them: requests per API key,
and failed key lookups per client address."""

from __future__ import annotations

import uuid

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.commands.core import AsyncScript

# Refill by elapsed time (Redis's clock, the same for every API process), take `cost` tokens (1, or 0 to
# only look) if there is one, else say how long until there will be. One script call: atomic.
_TOKEN_BUCKET = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - cost
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return tostring(wait)
"""


class RateLimiter:
    """``rate`` requests per second per key (an API key's id, a client address), in bursts of up to
    ``burst``; each kind of limit has its own ``prefix``."""

    def __init__(self, redis: Redis, rate: float, burst: int, prefix: str = "judge:ratelimit:") -> None:
        self.rate = rate
        self.burst = burst
        self.prefix = prefix
        self._script = redis.register_script(_TOKEN_BUCKET)
        self._async_scripts: dict[int, AsyncScript] = {}

    def wait_for(self, key: uuid.UUID | str, take: bool = True) -> float:
        """0 when the request may go ahead (a token is taken, unless not ``take``), else the seconds
        until it could."""
        return float(self._script(keys=[self.prefix + str(key)], args=[self.rate, self.burst, int(take)]))

    async def wait_for_async(self, redis: AsyncRedis, key: uuid.UUID | str, take: bool = True) -> float:
        """:meth:`wait_for` from the event loop, on ``redis`` (the same server)."""
        script = self._async_scripts.get(id(redis))
        if script is None:
            script = self._async_scripts[id(redis)] = redis.register_script(_TOKEN_BUCKET)
        return float(await script(keys=[self.prefix + str(key)], args=[self.rate, self.burst, int(take)]))
