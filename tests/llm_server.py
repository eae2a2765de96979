"""A real OpenAI-compatible chat-completions server on 127.0.0.1 with injectable faults, for tests.

litellm talks to it through its normal ``openai/<name>`` client path. Replies are
built from the prompt (the passage between ``<passage>`` tags, the description
between ``<description>`` tags), so they are valid, varied and deterministic.
Faults are chosen per request by a callable ``fault(attempt, body) -> kind``,
where ``attempt`` counts earlier requests with the same messages.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

FAULT_KINDS = ("429", "500", "slow", "malformed", "preamble", "fence")
FaultFn = Callable[[int, dict[str, Any]], str | None]

_STOP = {
    "the",
    "a",
    "an",
    "and",
    "or",
    "of",
    "to",
    "in",
    "on",
    "for",
    "is",
    "are",
    "be",
    "with",
    "that",
    "this",
    "it",
    "as",
    "by",
    "at",
    "from",
    "must",
    "each",
    "any",
    "all",
    "when",
    "not",
    "no",
    "was",
    "were",
    "has",
    "have",
    "their",
    "its",
    "into",
    "than",
    "then",
    "who",
}


def first_attempt(kind: str) -> FaultFn:
    """Every distinct request fails once with ``kind``, then succeeds."""
    return lambda attempt, body: kind if attempt == 0 else None


def always(kind: str) -> FaultFn:
    return lambda attempt, body: kind


def random_faults(rate: float, kinds: tuple[str, ...] = FAULT_KINDS, seed: int = 0) -> FaultFn:
    rng = random.Random(seed)
    lock = threading.Lock()

    def pick(attempt: int, body: dict[str, Any]) -> str | None:
        with lock:
            return rng.choice(kinds) if rng.random() < rate else None

    return pick


def _between(text: str, tag: str) -> str:
    m = re.search(rf"<{tag}>\s*(.*?)\s*</{tag}>", text, re.S)
    return m.group(1) if m else ""


def _keywords(text: str, n: int) -> list[str]:
    words = [w.lower() for w in re.findall(r"[A-Za-z][A-Za-z\-]{3,}", text)]
    seen: list[str] = []
    for w in sorted(words, key=lambda w: (-len(w), w)):
        if w not in _STOP and w not in seen:
            seen.append(w)
    return seen[:n] or ["topic"]


def _count(text: str, pattern: str, default: int) -> int:
    m = re.search(pattern, text)
    return int(m.group(1)) if m else default


def default_reply(body: dict[str, Any]) -> str:
    """A well-formed reply for whichever task the prompt asks for."""
    user = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
    if "<question>" in user:
        questions = re.findall(r"<question>\s*(.*?)\s*</question>", user, re.S)
        passage = _between(user, "passage")
        kw = _keywords(passage, 2)
        return json.dumps(
            {"answers": [f"Per the passage, {kw[0]} relates to {q[:40]}." for q in questions]}
        )
    if "<passage>" in user:
        passage = _between(user, "passage")
        n = _count(user, r"Write (\d+) search queries", 3)
        kw = _keywords(passage, 8)
        tag = hashlib.sha1(passage.encode()).hexdigest()[:4]
        styles = ["question", "keyword", "paraphrase"]
        queries = []
        for i in range(n):
            a, b = kw[i % len(kw)], kw[(i + 1) % len(kw)]
            style = styles[i % 3]
            text = {
                "question": f"What does the handbook require about {a} and {b} ({tag})?",
                "keyword": f"{a} {b} {tag}",
                "paraphrase": f"rules covering {a} during {b} work {tag}",
            }[style]
            queries.append({"style": style, "query": text, "answer": f"It requires {a} {b}."})
        return json.dumps(
            {
                "queries": queries,
                "hard_negative_query": f"What does the handbook say about {kw[0]} on holidays?",
                "positive_passage": f"A rewrite about {kw[0]} and {kw[-1]}.",
                "negative_passage": f"A passage about {kw[0]} in another setting.",
            }
        )
    if "<description>" in user and "system prompt" in user.lower():
        kw = _keywords(_between(user, "description"), 3)
        return f"You write search queries for staff working with {', '.join(kw)}."
    if "<description>" in user:
        n = _count(user, r"Write (\d+) passages", 3)
        kw = _keywords(_between(user, "description"), 6)
        start = _count(user, r"batch (\d+)", 0)
        return json.dumps(
            {
                "passages": [
                    f"Procedure {start}-{i}: staff handling {kw[i % len(kw)]} must log every "
                    f"{kw[(i + 2) % len(kw)]} check before the shift ends, and report faults "
                    f"about {kw[(i + 1) % len(kw)]} to the supervisor within {i + 2} hours."
                    for i in range(n)
                ]
            }
        )
    return "OK"


@dataclass
class LoggedRequest:
    index: int
    model: str
    passage: str
    fault: str | None
    started: float
    status: int = 0
    finished: float = 0.0
    authorization: str = ""
    response_format: str = ""
    body: dict[str, Any] = field(default_factory=dict)


class FakeLlmServer:
    """Runs in a background thread with its own event loop; use as a context manager."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        fault: FaultFn | None = None,
        slow_seconds: float = 3.0,
        retry_after: float = 1,
        api_key: str | None = None,
        models: tuple[str, ...] | None = None,
        reply: Callable[[dict[str, Any]], str] = default_reply,
        keep_bodies: bool = True,
    ) -> None:
        self.latency = latency
        self.fault = fault
        self.slow_seconds = slow_seconds
        self.retry_after = retry_after
        self.api_key = api_key
        self.models = models
        self.reply = reply
        self.keep_bodies = keep_bodies
        self.requests: list[LoggedRequest] = []
        self._attempts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> FakeLlmServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake LLM server did not start")

    def stop(self) -> None:
        if self._loop is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)  # type: ignore[union-attr]
        fut.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)  # type: ignore[union-attr]
        self._loop = None

    def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/log", self._log)
        self._runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=1024)
        loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready.set()
        loop.run_forever()
        loop.close()

    def passages_requested(self, status: int | None = 200) -> list[str]:
        """Passages of the row requests, optionally only those answered with ``status``."""
        return [
            r.passage for r in self.requests if r.passage and (status is None or r.status == status)
        ]

    async def _log(self, request: web.Request) -> web.Response:
        """The request log, for a test or bench running the server in another process."""
        rows = [
            {"passage": r.passage, "fault": r.fault, "status": r.status, "model": r.model}
            for r in self.requests
        ]
        return web.json_response(rows)

    async def _models(self, request: web.Request) -> web.Response:
        names = self.models or ("fake",)
        return web.json_response({"object": "list", "data": [{"id": m} for m in names]})

    @staticmethod
    def _error(status: int, message: str, code: str, headers: dict[str, str] | None = None):
        body = {"error": {"message": message, "type": "invalid_request_error", "code": code}}
        return web.json_response(body, status=status, headers=headers)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        text = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
        digest = hashlib.sha1(text.encode()).hexdigest()
        with self._lock:
            attempt = self._attempts.get(digest, 0)
            self._attempts[digest] = attempt + 1
            fault = self.fault(attempt, body) if self.fault else None
            entry = LoggedRequest(
                index=len(self.requests),
                model=str(body.get("model", "")),
                passage=_between(text, "passage") if "<question>" not in text else "",
                fault=fault,
                started=time.time(),
                authorization=request.headers.get("Authorization", ""),
                response_format=str((body.get("response_format") or {}).get("type", "")),
                body=body if self.keep_bodies else {},
            )
            self.requests.append(entry)
        response = await self._respond(body, fault, request)
        entry.status = response.status
        entry.finished = time.time()
        return response

    async def _respond(
        self, body: dict[str, Any], fault: str | None, request: web.Request
    ) -> web.Response:
        auth = request.headers.get("Authorization", "")
        if self.api_key is not None and auth != f"Bearer {self.api_key}":
            return self._error(401, "Incorrect API key provided.", "invalid_api_key")
        model = str(body.get("model", ""))
        if self.models is not None and model not in self.models:
            return self._error(404, f"The model `{model}` does not exist.", "model_not_found")
        if self.latency:
            await asyncio.sleep(self.latency)
        if fault == "429":
            return self._error(
                429,
                "Rate limit reached, slow down.",
                "rate_limit_exceeded",
                headers={"Retry-After": str(self.retry_after)},
            )
        if fault == "500":
            return self._error(500, "The server had an error.", "server_error")
        if fault == "slow":
            await asyncio.sleep(self.slow_seconds)
        content = self.reply(body)
        if fault == "malformed":
            content = content[: max(1, len(content) // 2)] + ' "unterminated'
        elif fault == "preamble":
            content = (
                "Sure! Here are the queries you asked for:\n\n" + content + "\nHope this helps."
            )
        elif fault == "fence":
            content = "```json\n" + content + "\n```"
        prompt_tokens = sum(len(str(m.get("content", ""))) for m in body["messages"]) // 4
        completion_tokens = max(1, len(content) // 4)
        return web.json_response(
            {
                "id": f"chatcmpl-{time.time_ns()}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
        )


def main() -> None:
    """Serve until killed, printing the URL first: the benches run it in its own process."""
    import argparse

    parser = argparse.ArgumentParser(description="fake OpenAI-compatible server")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--slow-seconds", type=float, default=3.0)
    parser.add_argument("--retry-after", type=float, default=1)
    args = parser.parse_args()
    server = FakeLlmServer(
        latency=args.latency,
        fault=random_faults(args.fault_rate, seed=args.seed) if args.fault_rate else None,
        slow_seconds=args.slow_seconds,
        retry_after=args.retry_after,
        keep_bodies=False,
    )
    server.start()
    print(server.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()


TOPICS = (
    "reefer",
    "forklift",
    "pallet",
    "invoice",
    "customs",
    "battery",
    "freezer",
    "dock",
    "manifest",
    "scanner",
    "ladder",
    "sprinkler",
    "allergen",
    "thermometer",
    "conveyor",
    "seal",
)


def make_chunks(n: int, sources: int = 3) -> list:
    """``n`` distinct passages spread over ``sources`` files, like a small handbook."""
    from ragtune.engine.core.records import Chunk, chunk_id_for

    chunks = []
    for i in range(n):
        a, b = TOPICS[i % len(TOPICS)], TOPICS[(i * 7 + 3) % len(TOPICS)]
        source = f"handbook/part-{i % sources}.md"
        text = (
            f"Section {i}. Staff must inspect every {a} unit numbered {i} before the morning shift, "
            f"record the {b} readings in log book {i * 3 + 1}, and escalate any fault to the "
            f"duty manager within {i % 5 + 1} hours."
        )
        chunks.append(
            Chunk(
                chunk_id=chunk_id_for(source, text),
                doc_id=source,
                text=text,
                source=source,
                title=f"part {i % sources}",
            )
        )
    return chunks


def llm_run_config(url: str, workspace: str = "", **llm: Any) -> Any:
    """A RunConfig pointing litellm's ``openai/`` provider at this server."""
    from ragtune.engine.config import RunConfig

    settings = {
        "model": "openai/fake",
        "api_base": url,
        "timeout": 5.0,
        "concurrency": 8,
        "dedup_threshold": 1.0,
        # every row part, so the tests see answers too (the default leaves them out)
        "tasks": ["queries", "answer", "hard_negative_query", "reranking_passages"],
    }
    settings.update(llm)
    data: dict[str, Any] = {"generation": {"generator": "litellm", "llm": settings}}
    if workspace:
        data["run"] = {"workspace": workspace}
    return RunConfig.from_dict(data)
