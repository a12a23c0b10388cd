"""Python client of the judge service (LLM-as-a-judge over HTTP), sync and async, on httpx.

    from judge_client import Judge

    with Judge("http://127.0.0.1:8000", key) as judge:  # or Judge(): JUDGE_URL and JUDGE_API_KEY
        verdict = judge.pairwise("What is 2+2?", "4", "five", swap="conservative")
        print(verdict.verdict, verdict.consistent)

Depends only on httpx and pydantic: the ``judge-client`` distribution (``pip install ./clients/python``).
Every error it raises is a ``JudgeError``.
"""

from judge_client._payloads import BatchOptions, JudgeOptions, PairwiseOptions, SingleOptions
from judge_client._protocol import RetryPolicy
from judge_client._transport import __version__
from judge_client.aio import AsyncJudge
from judge_client.errors import (
    BadRequest,
    Conflict,
    ConnectionFailed,
    Forbidden,
    InvalidArgument,
    JobFailed,
    JudgeError,
    JudgeTimeout,
    NotFound,
    RateLimited,
    ServerError,
    Unauthorized,
    Unavailable,
)
from judge_client.summaries import Summary
from judge_client.sync import Judge
from judge_client.types import ItemResult, Job, OrderResult, PairwiseItem, Progress, SingleItem, Template

__all__ = [
    "Template",
    "AsyncJudge",
    "BadRequest",
    "BatchOptions",
    "Conflict",
    "ConnectionFailed",
    "Forbidden",
    "InvalidArgument",
    "ItemResult",
    "Job",
    "JobFailed",
    "Judge",
    "JudgeError",
    "JudgeOptions",
    "JudgeTimeout",
    "NotFound",
    "OrderResult",
    "PairwiseItem",
    "PairwiseOptions",
    "Progress",
    "RateLimited",
    "RetryPolicy",
    "ServerError",
    "SingleItem",
    "SingleOptions",
    "Summary",
    "Unauthorized",
    "Unavailable",
    "__version__",
]
