"""Process-wide resources of the API, built once in the lifespan and reached through ``get_state``."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from app.auth.cache import PrincipalCache
from app.auth.ratelimit import RateLimiter
from app.core.config import Settings
from app.core.db import Database
from app.jobs.end_listener import JobEndListener
from app.jobs.queue import JobQueue
from app.judging.lookups import RecentLookups


@dataclass
class AppState:
    settings: Settings
    db: Database
    redis: Redis
    async_redis: AsyncRedis
    queue: JobQueue
    # None: no per-key rate limit (settings.rate_limit_per_second == 0).
    limiter: RateLimiter | None = None
    # `?wait=` requests hear of job ends through this (one pub/sub connection for the process).
    job_ends: JobEndListener = field(init=False)
    # API keys this process checked lately (settings.auth_cache_seconds).
    principals: PrincipalCache = field(init=False)
    # Failed key lookups per client address (None: settings.auth_failures_per_second == 0).
    failed_lookups: RateLimiter | None = field(init=False)
    # Resolved models and tenants' active-job counts, for judging submissions.
    lookups: RecentLookups = field(init=False)

    def __post_init__(self) -> None:
        self.job_ends = JobEndListener(self.async_redis)
        self.principals = PrincipalCache(self.settings.auth_cache_seconds)
        rate = self.settings.auth_failures_per_second
        self.failed_lookups = (
            RateLimiter(self.redis, rate, self.settings.auth_failures_burst, "judge:authfail:")
            if rate > 0
            else None
        )
        self.lookups = RecentLookups()

    @classmethod
    def build(cls, settings: Settings) -> AppState:
        if not settings.redis_url:
            raise RuntimeError("redis_url is not set (embedded mode sets it before the app starts)")
        redis = Redis.from_url(settings.redis_url)
        return cls(
            settings=settings,
            db=Database(settings.sqlalchemy_url),
            redis=redis,
            async_redis=AsyncRedis.from_url(settings.redis_url),
            queue=JobQueue.from_settings(redis, settings),
            limiter=(
                RateLimiter(redis, settings.rate_limit_per_second, settings.rate_limit_burst)
                if settings.rate_limit_per_second > 0
                else None
            ),
        )

    async def close(self) -> None:
        await self.job_ends.stop()
        await self.async_redis.aclose()
        self.redis.close()
        self.db.dispose()


async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.judge
    return state
