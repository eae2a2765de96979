"""The LLM generator: rows per chunk from any litellm model, crash-safe, resumable, concurrent.

Every finished call is one line in ``generated.jsonl`` under a key from the
chunk text, the rendered prompt, the model and the sampling parameters, so a
restart makes no call that already succeeded and a prompt edit regenerates only
what it changes. After the calls, the quality gate runs over all rows; where it
changed a chunk's rows, the kept rows are written as a ``litellm:gate`` record
whose key also hashes them. The summary's keys name, per chunk, the record
holding its final rows (the call's own record when the gate left it intact).
"""

from __future__ import annotations

import asyncio
import math
import queue
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ragtune.engine.config import RunConfig
from ragtune.engine.config.llm import LlmConfig
from ragtune.engine.core.errors import Cancelled
from ragtune.engine.core.events import Emitter
from ragtune.engine.core.records import Chunk
from ragtune.engine.core.workspace import Workspace
from ragtune.engine.generate.base import GenerationProgress, GenerationSummary
from ragtune.engine.generate.llm_client import (
    ClientStats,
    LlmClient,
    RateLimiter,
    connection_error,
    resolve_api_key,
    run_sync,
)
from ragtune.engine.generate.llm_connection import ConnectionResult, test_connection
from ragtune.engine.generate.llm_cost import CostEstimate, estimate_cost
from ragtune.engine.generate.llm_describe import draft_system_prompt, synthesize_chunks
from ragtune.engine.generate.llm_parse import (
    list_schema,
    queries_schema,
    rows_from_reply,
    strings_from_reply,
)
from ragtune.engine.generate.llm_prompts import Prompts, answer_message, queries_message
from ragtune.engine.generate.quality import GateSettings, quality_gate
from ragtune.engine.generate.review import apply_review, few_shot_examples
from ragtune.engine.generate.rows import (
    CallRecord,
    GeneratedRow,
    RecordWriter,
    latest_records,
    make_key,
    read_rows,
)

__all__ = [
    "ConnectionResult",
    "CostEstimate",
    "LlmGenerator",
    "draft_system_prompt",
    "estimate_cost",
    "run_llm_generation",
    "sample_rows",
    "spread_sample",
    "synthesize_chunks",
    "test_connection",
]

GENERATOR = "litellm"
# After this many calls in a row fail to connect, the endpoint is down: stop instead of grinding.
MAX_CONNECTION_FAILURES = 24


class BackgroundRecordWriter(RecordWriter):
    """Appends and flushes each record on its own thread, so a slow disk never stalls the calls.

    A record is on disk about a millisecond after its call returns; a SIGKILL in
    that window loses it like a call still in flight (the restart redoes it).
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._queue: queue.SimpleQueue[CallRecord | None] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name="ragtune-records", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while (record := self._queue.get()) is not None:
            try:
                self._fh.write(record.to_json() + "\n")
                self._fh.flush()
            except BaseException as exc:  # surfaced by close()
                self._error = exc

    def write(self, record: CallRecord) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(record)

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        super().close()
        if self._error is not None:
            raise self._error


def call_params(cfg: LlmConfig, with_answers: bool) -> dict[str, Any]:
    """The settings that change a reply; timeouts, limits and concurrency do not."""
    return {
        "temperature": cfg.temperature,
        "max_tokens": cfg.max_tokens,
        "queries_per_chunk": cfg.queries_per_chunk,
        "tasks": sorted(cfg.tasks),
        "answers_inline": with_answers,
    }


@dataclass
class ChunkOutcome:
    chunk: Chunk
    ok: bool
    rows: list[GeneratedRow] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    reason: str = ""
    cached: bool = False


class LlmGenerator:
    """Implements the ``Generator`` protocol for any model litellm speaks."""

    name = GENERATOR

    def __init__(
        self,
        cfg: RunConfig,
        *,
        api_key: str | None = None,
        embedder: Any = None,
        run_gate: bool = True,
    ) -> None:
        self.cfg = cfg
        self.llm = cfg.generation.llm
        self._api_key = resolve_api_key(self.llm, api_key)
        self._embedder = embedder
        self.run_gate = run_gate
        self.answer_model = self.llm.answer_model if "answer" in self.llm.tasks else ""
        self.with_answers = "answer" in self.llm.tasks and not self.llm.answer_model
        self._schema = queries_schema(self.llm, self.with_answers)
        self._examples: list[GeneratedRow] = []

    # keys -------------------------------------------------------------------------------
    def messages_for(self, prompts: Prompts, chunk: Chunk) -> list[dict[str, str]]:
        user = queries_message(
            prompts,
            self.llm,
            chunk.text,
            title=chunk.title or chunk.heading,
            source=chunk.source,
            with_answers=self.with_answers,
            examples=[r.question for r in self._examples if r.chunk_id != chunk.chunk_id],
        )
        return [{"role": "system", "content": prompts.system}, {"role": "user", "content": user}]

    def query_key(self, chunk: Chunk, messages: list[dict[str, str]]) -> str:
        prompt = "\n".join(m["content"] for m in messages)
        return make_key(
            chunk.text, prompt, self.llm.model, call_params(self.llm, self.with_answers)
        )

    def answer_messages(self, prompts: Prompts, chunk: Chunk, questions: list[str]) -> list[dict]:
        user = answer_message(prompts, chunk.text, questions)
        return [{"role": "system", "content": prompts.system}, {"role": "user", "content": user}]

    # protocol ---------------------------------------------------------------------------
    def generate(
        self,
        chunks: Sequence[Chunk],
        ws: Workspace,
        events: Emitter,
        cancel: threading.Event | None = None,
    ) -> GenerationSummary:
        """The full run; the sample review's decisions are applied to the rows it stands for."""
        summary = run_sync(self._generate(list(chunks), ws, events, cancel, sample=False))[0]
        reviewed = apply_review(ws, summary.keys)
        if reviewed != summary.keys:
            summary.keys = reviewed
            summary.rows = len(read_rows(ws.generated_path, reviewed))
        return summary

    def sample(self, chunks: Sequence[Chunk], ws: Workspace, k: int) -> list[GeneratedRow]:
        """``k`` rows taken in turn from each sampled chunk, so they show as many passages
        and sources as they can rather than every query of the first chunk."""
        _, rows = run_sync(self._generate(list(chunks), ws, Emitter(), None, sample=True))
        return interleave(rows, k)

    async def _generate(
        self,
        chunks: list[Chunk],
        ws: Workspace,
        events: Emitter,
        cancel: threading.Event | None,
        *,
        sample: bool,
    ) -> tuple[GenerationSummary, list[GeneratedRow]]:
        prompts = Prompts.load(ws.prompts_dir)
        self._examples = few_shot_examples(ws)
        cache = latest_records(ws.generated_path)
        stats = ClientStats()
        semaphore = asyncio.Semaphore(self.llm.concurrency)
        limiters = (
            RateLimiter(self.llm.requests_per_minute),
            RateLimiter(self.llm.tokens_per_minute),
        )
        client = LlmClient(
            self.llm,
            api_key=self._api_key,
            cancel=cancel,
            semaphore=semaphore,
            limiters=limiters,
            stats=stats,
        )
        answerer = None
        if self.answer_model:
            answerer = LlmClient(
                self.llm,
                api_key=self._api_key,
                model=self.answer_model,
                cancel=cancel,
                semaphore=semaphore,
                limiters=limiters,
                stats=stats,
            )
        summary = GenerationSummary(chunks=len(chunks))
        failures: Counter = Counter()
        outcomes: dict[str, ChunkOutcome] = {}
        started = time.monotonic()
        state = {"rows": 0, "finished": 0, "last": 0.0, "conn_fail": 0}
        writer = BackgroundRecordWriter(ws.generated_path)
        queue: asyncio.Queue[Chunk] = asyncio.Queue()
        for chunk in chunks:
            queue.put_nowait(chunk)

        def report(final: bool = False) -> None:
            now = time.monotonic()
            if not final and now - state["last"] < 0.25:
                return
            state["last"] = now
            elapsed = max(now - started, 1e-6)
            events.progress(
                state["finished"],
                len(chunks),
                unit="chunks",
                extra=GenerationProgress(
                    rows=state["rows"],
                    rows_per_s=round(state["rows"] / elapsed, 2),
                    calls=stats.calls,
                    input_tokens=stats.input_tokens,
                    output_tokens=stats.output_tokens,
                    failures=dict(failures),
                    retries=dict(+stats.retries_by_reason),
                    cost_usd=round(stats.cost_usd, 6) if stats.cost_known else None,
                ),
            )

        async def worker() -> None:
            while True:
                try:
                    chunk = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                outcome = await self._one_chunk(
                    chunk, prompts, cache, client, answerer, writer, sample
                )
                outcomes[chunk.chunk_id] = outcome
                state["finished"] += 1
                if outcome.ok:
                    state["rows"] += len(outcome.rows)
                    state["conn_fail"] = 0
                else:
                    failures[outcome.reason] += 1
                    state["conn_fail"] = (
                        state["conn_fail"] + 1 if outcome.reason == "connection" else 0
                    )
                if not sample:
                    report()

        tasks = [
            asyncio.create_task(worker())
            for _ in range(min(self.llm.concurrency, len(chunks)) or 1)
        ]
        stop_reason: BaseException | None = None
        try:
            while True:
                done, _ = await asyncio.wait(tasks, timeout=0.1)
                if cancel is not None and cancel.is_set():
                    stop_reason = Cancelled()
                elif client.fatal is not None or (
                    answerer is not None and answerer.fatal is not None
                ):
                    stop_reason = client.fatal or answerer.fatal  # type: ignore[union-attr]
                elif state["conn_fail"] >= MAX_CONNECTION_FAILURES and not any(
                    o.ok and not o.cached for o in outcomes.values()
                ):
                    stop_reason = connection_error(self.llm, "every call failed to connect")
                if stop_reason is not None:
                    for t in tasks:
                        t.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
                    break
                if len(done) == len(tasks):
                    break
            for t in tasks:
                if t.done() and not t.cancelled() and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
            if stop_reason is None and client.fatal is not None:
                stop_reason = client.fatal
            if stop_reason is not None:
                if not sample:
                    report(final=True)
                raise stop_reason

            ordered = [outcomes[c.chunk_id] for c in chunks if c.chunk_id in outcomes]
            all_rows = [r for o in ordered if o.ok for r in o.rows]
            gated = self._gate(all_rows, chunks, events if not sample else None, summary)
            if sample:
                return summary, gated
            by_chunk: dict[str, list[GeneratedRow]] = {}
            for row in gated:
                by_chunk.setdefault(row.chunk_id, []).append(row)
            for o in ordered:
                if not o.ok:
                    summary.failed += 1
                    continue
                if o.cached:
                    summary.skipped += 1
                else:
                    summary.done += 1
                kept = by_chunk.get(o.chunk.chunk_id, [])
                if kept == o.rows:
                    summary.keys.append(o.keys[-1])
                    continue
                key = make_key("gate", o.keys, [r.question for r in kept], self._gate_settings())
                summary.keys.append(key)
                if key not in cache:
                    writer.write(
                        CallRecord(
                            key=key,
                            chunk_id=o.chunk.chunk_id,
                            generator=f"{GENERATOR}:gate",
                            model=self.llm.model,
                            rows=kept,
                        )
                    )
            summary.rows = len(gated)
            summary.failures_by_reason = dict(failures)
            summary.input_tokens = stats.input_tokens
            summary.output_tokens = stats.output_tokens
            summary.cost_usd = round(stats.cost_usd, 6) if stats.cost_known else None
            report(final=True)
            return summary, gated
        finally:
            writer.close()

    def _gate_settings(self) -> GateSettings:
        return GateSettings.from_llm(self.llm)

    def _gate(
        self,
        rows: list[GeneratedRow],
        chunks: list[Chunk],
        events: Emitter | None,
        summary: GenerationSummary,
    ) -> list[GeneratedRow]:
        if not self.run_gate:
            return rows
        settings = self._gate_settings()
        embedder = self._embedder
        if embedder is None and settings.needs_embedder and events is not None and rows:
            from ragtune.engine.core.models import load_embedder

            embedder = self._embedder = load_embedder(self.cfg.embedder.base_model)
        passages = {c.chunk_id: c.text for c in chunks}
        result = quality_gate(rows, settings, embedder=embedder, passages=passages, events=events)
        summary.dropped_by_filter = result.dropped_by_filter
        return result.rows

    async def _one_chunk(
        self,
        chunk: Chunk,
        prompts: Prompts,
        cache: dict[str, CallRecord],
        client: LlmClient,
        answerer: LlmClient | None,
        writer: RecordWriter,
        sample: bool,
    ) -> ChunkOutcome:
        messages = self.messages_for(prompts, chunk)
        key = self.query_key(chunk, messages)
        cached = cache.get(key)
        fresh = False
        if cached is not None and cached.status == "ok":
            rows = cached.rows
        else:
            result = await client.call(
                messages,
                lambda data: rows_from_reply(data, chunk, self.llm, self.with_answers),
                schema=self._schema,
                name="queries",
            )
            if result.reason == "cancelled" or (not result.ok and client.fatal is not None):
                return ChunkOutcome(chunk, False, reason=result.reason or "cancelled")
            record = CallRecord(
                key=key,
                chunk_id=chunk.chunk_id,
                status="ok" if result.ok else "failed",
                generator=f"{GENERATOR}:queries",
                model=self.llm.model,
                error="" if result.ok else f"{result.reason}: {result.error}",
                usage={**result.usage, "attempts": result.attempts, "cost_usd": result.cost_usd},
                rows=result.value if result.ok else [],
            )
            if result.ok or not sample:
                writer.write(record)
            if not result.ok:
                return ChunkOutcome(chunk, False, keys=[key], reason=result.reason)
            rows, fresh = result.value, True
        keys = [key]
        if answerer is not None:
            rows, answer_key, answered_fresh = await self._answers(
                chunk, rows, prompts, cache, answerer, writer, sample
            )
            if answer_key:
                keys.append(answer_key)
            fresh = fresh or answered_fresh
        return ChunkOutcome(chunk, True, rows=rows, keys=keys, cached=not fresh)

    async def _answers(
        self,
        chunk: Chunk,
        rows: list[GeneratedRow],
        prompts: Prompts,
        cache: dict[str, CallRecord],
        answerer: LlmClient,
        writer: RecordWriter,
        sample: bool,
    ) -> tuple[list[GeneratedRow], str, bool]:
        """Answers from the answer model; on failure the rows stay, without answers."""
        questions = [r.question for r in rows]
        messages = self.answer_messages(prompts, chunk, questions)
        prompt = "\n".join(m["content"] for m in messages)
        key = make_key(chunk.text, prompt, self.answer_model, call_params(self.llm, False))
        cached = cache.get(key)
        if cached is not None and cached.status == "ok":
            return cached.rows, key, False
        result = await answerer.call(
            messages,
            lambda data: strings_from_reply(data, "answers", len(questions)),
            schema=list_schema("answers"),
            name="answers",
        )
        if result.reason == "cancelled":
            return rows, "", False
        answered = [replace(r, response=a) for r, a in zip(rows, result.value or [], strict=False)]
        record = CallRecord(
            key=key,
            chunk_id=chunk.chunk_id,
            status="ok" if result.ok else "failed",
            generator=f"{GENERATOR}:answers",
            model=self.answer_model,
            error="" if result.ok else f"{result.reason}: {result.error}",
            usage={**result.usage, "attempts": result.attempts, "cost_usd": result.cost_usd},
            rows=answered if result.ok else [],
        )
        if result.ok or not sample:
            writer.write(record)
        return (answered, key, True) if result.ok else (rows, "", True)


def interleave(rows: Sequence[GeneratedRow], k: int) -> list[GeneratedRow]:
    """The first ``k`` rows of a round-robin over their chunks, in chunk order."""
    by_chunk: dict[str, list[GeneratedRow]] = {}
    for row in rows:
        by_chunk.setdefault(row.chunk_id, []).append(row)
    out: list[GeneratedRow] = []
    while len(out) < k and any(by_chunk.values()):
        for pending in by_chunk.values():
            if pending and len(out) < k:
                out.append(pending.pop(0))
    return out


def spread_sample(chunks: Sequence[Chunk], n: int) -> list[Chunk]:
    """``n`` chunks taken round-robin across sources, evenly spaced inside each source and
    centred in their stretch, so a document's title block is not always the one shown."""
    by_source: dict[str, list[Chunk]] = {}
    for c in chunks:
        by_source.setdefault(c.source, []).append(c)
    picks: dict[str, list[Chunk]] = {}
    share = max(1, math.ceil(n / max(1, len(by_source))))
    for src, items in by_source.items():
        step = max(1, len(items) // share)
        picks[src] = items[step // 2 :: step][:share]
    out: list[Chunk] = []
    while len(out) < n and any(picks.values()):
        for src in list(picks):
            if picks[src] and len(out) < n:
                out.append(picks[src].pop(0))
    return out


def sample_rows(
    cfg: RunConfig,
    ws: Workspace,
    chunks: Sequence[Chunk],
    k: int | None = None,
    api_key: str | None = None,
) -> list[GeneratedRow]:
    """K rows from chunks across the sources, for review before the full run.

    Successful calls are appended to ``generated.jsonl`` (the full run reuses
    them when their key still matches); no gate record and no stage state is
    written, so the full run's bookkeeping is untouched.
    """
    k = k or cfg.generation.llm.sample_size
    n = math.ceil(k / cfg.generation.llm.queries_per_chunk) + 1
    picked = spread_sample(chunks, n)
    generator = LlmGenerator(cfg, api_key=api_key)
    return generator.sample(picked, ws, k)


def run_llm_generation(
    cfg: RunConfig,
    ws: Workspace,
    chunks: list[Chunk],
    events: Emitter,
    cancel: threading.Event | None = None,
    api_key: str | None = None,
) -> GenerationSummary:
    """The pipeline's entry point.

    With no chunks and only a description, the synthetic passages in
    ``chunks.parquet`` are used, written first when missing (so editing the
    system prompt later regenerates rows, not the passages they came from).
    """
    if not chunks and cfg.sources.description and not cfg.sources.has_documents:
        from ragtune.engine.core.records import read_chunks, write_chunks

        if ws.chunks_path.exists():
            chunks = read_chunks(ws.chunks_path)
        else:
            chunks = synthesize_chunks(cfg, ws, events, cancel=cancel, api_key=api_key)
            write_chunks(ws.chunks_path, chunks)
    return LlmGenerator(cfg, api_key=api_key).generate(chunks, ws, events, cancel)
