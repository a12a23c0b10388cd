"""``Judge``: the blocking client (httpx.Client)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, TypeVar, Unpack, overload

import httpx

from judge_client import _flows
from judge_client._flows import JobRef, OnUpdate
from judge_client._payloads import BatchOptions, Item, PairwiseOptions, SingleOptions
from judge_client._protocol import (
    CloseStream,
    Emit,
    Flow,
    HttpRequest,
    HttpResponse,
    NextEvent,
    OpenStream,
    Reply,
    Send,
    Sleep,
    Step,
    TransportFailure,
)
from judge_client._transport import Connection, EventStream, to_response
from judge_client.summaries import Summary
from judge_client.types import ItemResult, ItemStatus, Job, JobKind, JobStatus, Kind, Template

T = TypeVar("T")


class Judge:
    """A client of the judge service.

    ``Judge("http://127.0.0.1:8000", key)``; left out, ``url`` and ``key`` come from JUDGE_URL and
    JUDGE_API_KEY (no URL at all: ``http://127.0.0.1:8000``). ``timeout`` is each request's network
    timeout (a request that asks the service to wait gets that long on top); ``retries`` is how often a
    request is retried after no answer, 429, 502, 503 or 504 (honouring ``Retry-After``). ``http`` is an
    ``httpx.Client`` of your own (proxies, TLS, transports), which you then close yourself.
    """

    def __init__(
        self,
        url: str | None = None,
        key: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        http: httpx.Client | None = None,
    ) -> None:
        self._conn = Connection.of(url, key, timeout, retries, backoff)
        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Judge:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # Judging ------------------------------------------------------------------------------------

    @overload
    def pairwise(
        self,
        question: str | Sequence[str],
        answer_a: str | Sequence[str],
        answer_b: str | Sequence[str],
        *,
        reference: str | Sequence[str] | None = None,
        turn: int | None = None,
        id: str | None = None,
        wait: Literal[True] = True,
        timeout: float | None = None,
        poll: float = 1.0,
        **options: Unpack[PairwiseOptions],
    ) -> ItemResult: ...

    @overload
    def pairwise(
        self,
        question: str | Sequence[str],
        answer_a: str | Sequence[str],
        answer_b: str | Sequence[str],
        *,
        reference: str | Sequence[str] | None = None,
        turn: int | None = None,
        id: str | None = None,
        wait: Literal[False],
        timeout: float | None = None,
        poll: float = 1.0,
        **options: Unpack[PairwiseOptions],
    ) -> Job: ...

    def pairwise(
        self,
        question: str | Sequence[str],
        answer_a: str | Sequence[str],
        answer_b: str | Sequence[str],
        *,
        reference: str | Sequence[str] | None = None,
        turn: int | None = None,
        id: str | None = None,
        wait: bool = True,
        timeout: float | None = None,
        poll: float = 1.0,
        **options: Unpack[PairwiseOptions],
    ) -> ItemResult | Job:
        """Judge one pair: A, B or tie (``swap``, ``template``, ``verdict_mode``, ``model`` ... as the
        API's options). ``question`` is one question, or the user turns of a conversation (then each
        answer is a list, one per turn). Waits for the verdict unless ``wait=False`` (then: the job)."""
        return self._run(
            _flows.judge(
                "pairwise",
                question,
                (answer_a, answer_b),
                reference,
                turn,
                id,
                wait,
                timeout,
                poll,
                options,
                self._conn.policy,
            )
        )

    @overload
    def single(
        self,
        question: str | Sequence[str],
        answer: str | Sequence[str],
        *,
        reference: str | Sequence[str] | None = None,
        turn: int | None = None,
        id: str | None = None,
        wait: Literal[True] = True,
        timeout: float | None = None,
        poll: float = 1.0,
        **options: Unpack[SingleOptions],
    ) -> ItemResult: ...

    @overload
    def single(
        self,
        question: str | Sequence[str],
        answer: str | Sequence[str],
        *,
        reference: str | Sequence[str] | None = None,
        turn: int | None = None,
        id: str | None = None,
        wait: Literal[False],
        timeout: float | None = None,
        poll: float = 1.0,
        **options: Unpack[SingleOptions],
    ) -> Job: ...

    def single(
        self,
        question: str | Sequence[str],
        answer: str | Sequence[str],
        *,
        reference: str | Sequence[str] | None = None,
        turn: int | None = None,
        id: str | None = None,
        wait: bool = True,
        timeout: float | None = None,
        poll: float = 1.0,
        **options: Unpack[SingleOptions],
    ) -> ItemResult | Job:
        """Grade one answer on a scale (``scale=(1, 10)`` by default); otherwise like ``pairwise``."""
        return self._run(
            _flows.judge(
                "single",
                question,
                (answer,),
                reference,
                turn,
                id,
                wait,
                timeout,
                poll,
                options,
                self._conn.policy,
            )
        )

    def submit_batch(
        self,
        items: Iterable[Item],
        kind: Kind = "pairwise",
        *,
        wait: float | None = None,
        **options: Unpack[BatchOptions],
    ) -> Job:
        """Create one judging job for ``items`` (PairwiseItem/SingleItem or mappings of the API's item
        fields) and return it. ``wait``: seconds the service may hold the request for the job to end."""
        return self._run(_flows.submit(kind, items, options, wait, self._conn.policy))

    # Jobs ---------------------------------------------------------------------------------------

    def wait(
        self, job: JobRef, timeout: float | None = None, poll: float = 1.0, on_update: OnUpdate | None = None
    ) -> Job:
        """Wait until the job ends (succeeded, failed or cancelled) and return it, following its event
        stream: ``on_update`` sees the job after each change (status, progress, stage). Where the stream
        is unavailable, polls every ``poll`` seconds. JudgeTimeout after ``timeout`` seconds (the job
        goes on). The job comes back without its results: iterate ``results(job)``."""
        return self._run(_flows.wait_for(job, timeout, poll, on_update, self._conn.policy))

    def results(
        self, job: JobRef, page_size: int = 100, status: ItemStatus | None = None
    ) -> Iterator[ItemResult]:
        """Every item result of a judging job (only those in ``status``: ``ok``, ``error`` or
        ``pending``, if given), in item order, fetched page by page as you iterate."""
        return self._iterate(_flows.results(job, page_size, self._conn.policy, status))

    def job(self, job: JobRef) -> Job:
        """The job's current status, progress and error."""
        return self._run(_flows.get_job(job, self._conn.policy))

    def cancel(self, job: JobRef) -> Job:
        """Cancel a job (queued: at once; running: at the worker's next check). Conflict if it ended."""
        return self._run(_flows.cancel(job, self._conn.policy))

    def jobs(
        self,
        status: JobStatus | None = None,
        kind: JobKind | None = None,
        model: str | None = None,
        metadata: Mapping[str, str] | None = None,
        page_size: int = 100,
    ) -> Iterator[Job]:
        """Your jobs, newest first, fetched page by page as you iterate; ``metadata`` keeps the jobs
        carrying every one of these labels."""
        return self._iterate(_flows.list_jobs(status, kind, model, metadata, page_size, self._conn.policy))

    def summary(
        self,
        job: JobRef | None = None,
        *,
        metadata: Mapping[str, str] | None = None,
        rounds: int | None = None,
        seed: int = 0,
        baseline: str | None = None,
    ) -> Summary:
        """Rates, scores and ratings with 95 % bootstrap intervals of one judging job, or of the judging
        jobs carrying every ``metadata`` label (e.g. ``{"mtbench_run": "my-run"}``): verdict counts,
        consistency and first-position rates, win rates per model, mean scores per model and category,
        Bradley–Terry ratings (every pair of models met) or length-controlled win rates (games against
        ``baseline``, by default the one inferred). ``rounds``: bootstrap resamples (the service's
        default: 1000); the same ``seed`` gives the same intervals."""
        return self._run(_flows.summary(job, metadata, rounds, seed, baseline, self._conn.policy))

    def templates(self) -> list[Template]:
        """The templates requests can name: the built-in ones and your tenant's (every version)."""
        return self._run(_flows.templates(self._conn.policy))

    def create_template(self, name: str, user: str, **fields: Any) -> Template:
        """Register a template (``mode``, ``system``, ``response_prefix``, ``cot``, ``reference``,
        ``multi_turn``, ``description``); a known name gets a new version. Use ``template.ref``."""
        return self._run(_flows.create_template({"name": name, "user": user, **fields}, self._conn.policy))

    # Driving flows ------------------------------------------------------------------------------

    def _run(self, flow: Flow[T]) -> T:
        stream = EventStream(self._http)
        try:
            reply: Reply = None
            while True:
                try:
                    step = flow.send(reply)
                except StopIteration as stop:
                    return stop.value
                if isinstance(step, Emit):
                    raise RuntimeError("an iterating flow was run as a call")
                reply = self._execute(step, stream)
        finally:
            stream.close()

    def _iterate(self, flow: Flow[None]) -> Iterator[Any]:
        stream = EventStream(self._http)
        try:
            reply: Reply = None
            while True:
                try:
                    step = flow.send(reply)
                except StopIteration:
                    return
                if isinstance(step, Emit):
                    reply = None
                    yield step.value
                else:
                    reply = self._execute(step, stream)
        finally:
            stream.close()

    def _execute(self, step: Step, stream: EventStream) -> Reply:
        if isinstance(step, Send):
            return self._send(step.request)
        if isinstance(step, Sleep):
            time.sleep(step.seconds)
            return None
        if isinstance(step, OpenStream):
            return stream.open(self._conn.httpx_arguments(step.request))
        if isinstance(step, NextEvent):
            return stream.next()
        assert isinstance(step, CloseStream), step
        stream.close()
        return None

    def _send(self, request: HttpRequest) -> HttpResponse | TransportFailure:
        try:
            return to_response(self._http.request(**self._conn.httpx_arguments(request)))
        except httpx.TransportError as exc:
            return TransportFailure(exc)
