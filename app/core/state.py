"""Process-wide resources of the API, built once in the lifespan and reached through ``get_state``."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from app.core.config import Settings
from app.core.db import Database
from app.jobs.queue import JobQueue


@dataclass
class AppState:
    settings: Settings
    db: Database
    redis: Redis
    async_redis: AsyncRedis
    queue: JobQueue

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
            queue=JobQueue(redis, settings.job_timeout_seconds),
        )

    async def close(self) -> None:
        await self.async_redis.aclose()
        self.redis.close()
        self.db.dispose()


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.judge
    return state
