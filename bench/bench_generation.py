"""LLM generator throughput vs bare litellm, and a 500-chunk run under 20% injected faults.

Against the loopback OpenAI-compatible server (tests/llm_server.py) with a fixed
200 ms latency, measured in the same run:

- the generator (prompting, parsing, quality gate, cache writes, events) at
  concurrency 32, vs a bare ``asyncio.gather`` over ``litellm.acompletion``
  with the same messages at the same concurrency (target >= 0.9x), and vs a
  sequential loop (target >= 10x);
- 500 chunks under 20% mixed faults (429 with Retry-After, 500, slow replies
  past the timeout, malformed JSON, preambles, code fences): every chunk done
  or failed with its reason, nothing duplicated, summary counts == generated.jsonl.

    python bench/bench_generation.py [--chunks 320] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from llm_server import llm_run_config, make_chunks  # noqa: E402

from ragtune.engine.core.events import Emitter  # noqa: E402
from ragtune.engine.core.workspace import Workspace  # noqa: E402
from ragtune.engine.generate.llm import LlmGenerator, run_llm_generation  # noqa: E402
from ragtune.engine.generate.llm_prompts import Prompts  # noqa: E402
from ragtune.engine.generate.rows import iter_records, latest_records  # noqa: E402

CONCURRENCY = 32
LATENCY = 0.2


@contextlib.contextmanager
def server_process(*args: str) -> Iterator[str]:
    """The loopback server in its own process, as a real endpoint would be; yields its URL."""
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "llm_server.py"), *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        if not url.startswith("http"):
            raise RuntimeError("the loopback server did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def request_log(url: str) -> list[dict]:
    with urllib.request.urlopen(url.rsplit("/v1", 1)[0] + "/log") as reply:
        return json.load(reply)


def fresh_chunks(n: int, salt: str) -> list:
    """Chunks no earlier phase has seen, so every phase pays for real calls."""
    from dataclasses import replace

    return [
        replace(c, text=f"[{salt}] {c.text}", chunk_id=f"{salt}-{c.chunk_id}")
        for c in make_chunks(n)
    ]


def messages_for(cfg, chunks) -> list[list[dict[str, str]]]:
    gen = LlmGenerator(cfg)
    prompts = Prompts.defaults()
    return [gen.messages_for(prompts, c) for c in chunks]


async def _call(litellm, url: str, messages) -> None:
    """The request the generator makes, sent bare: the baselines' unit of work."""
    await litellm.acompletion(
        model="openai/fake",
        api_base=url,
        api_key="sk-no-key-required",
        messages=messages,
        temperature=0.7,
        max_tokens=1024,
        response_format={"type": "json_object"},
        timeout=30,
    )


async def bare_gather(url: str, all_messages, concurrency: int) -> float:
    import litellm

    sem = asyncio.Semaphore(concurrency)

    async def one(messages) -> None:
        async with sem:
            await _call(litellm, url, messages)

    start = time.perf_counter()
    await asyncio.gather(*(one(m) for m in all_messages))
    return len(all_messages) / (time.perf_counter() - start)


async def sequential(url: str, all_messages) -> float:
    import litellm

    start = time.perf_counter()
    for messages in all_messages:
        await _call(litellm, url, messages)
    return len(all_messages) / (time.perf_counter() - start)


def generator_rate(url: str, chunks, root: Path) -> float:
    ws = Workspace.create(root)
    cfg = llm_run_config(url, concurrency=CONCURRENCY, timeout=30.0)
    start = time.perf_counter()
    summary = run_llm_generation(cfg, ws, chunks, Emitter(lambda e: None))
    elapsed = time.perf_counter() - start
    assert summary.done == len(chunks), summary
    return len(chunks) / elapsed


def throughput(n_chunks: int, rounds: int, tmp: Path) -> dict[str, float]:
    with server_process("--latency", str(LATENCY)) as url:
        cfg = llm_run_config(url)
        warm = messages_for(cfg, fresh_chunks(CONCURRENCY, "warm"))
        asyncio.run(bare_gather(url, warm, CONCURRENCY))
        seq = asyncio.run(sequential(url, messages_for(cfg, fresh_chunks(20, "seq"))))
        gathers, gens = [], []
        for r in range(rounds):
            gathers.append(
                asyncio.run(
                    bare_gather(
                        url, messages_for(cfg, fresh_chunks(n_chunks, f"g{r}")), CONCURRENCY
                    )
                )
            )
            gens.append(generator_rate(url, fresh_chunks(n_chunks, f"r{r}"), tmp / f"gen{r}"))
    gather, gen = statistics.median(gathers), statistics.median(gens)
    print(f"sequential loop:          {seq:7.1f} calls/s")
    print(
        f"bare gather (c={CONCURRENCY}):     {gather:7.1f} calls/s  (rounds: {[round(x, 1) for x in gathers]})"
    )
    print(
        f"ragtune generator (c={CONCURRENCY}): {gen:7.1f} chunks/s (rounds: {[round(x, 1) for x in gens]})"
    )
    print(f"generator / bare gather = {gen / gather:.2f}x (target >= 0.9)")
    print(f"generator / sequential  = {gen / seq:.1f}x (target >= 10)")
    return {"sequential": seq, "gather": gather, "generator": gen}


def fault_run(n_chunks: int, tmp: Path) -> dict[str, object]:
    chunks = fresh_chunks(n_chunks, "faults")
    with server_process(
        "--latency", str(LATENCY), "--fault-rate", "0.2", "--seed", "7",
        "--slow-seconds", "4", "--retry-after", "1",
    ) as url:  # fmt: skip
        ws = Workspace.create(tmp / "faults")
        cfg = llm_run_config(url, concurrency=CONCURRENCY, timeout=2.0, max_retries=4)
        start = time.perf_counter()
        summary = run_llm_generation(cfg, ws, chunks, Emitter(lambda e: None))
        elapsed = time.perf_counter() - start
        log = request_log(url)
        faults = Counter(r["fault"] for r in log if r["fault"])
        n_requests = len(log)

    records = [r for r in iter_records(ws.generated_path) if r.generator == "litellm:queries"]
    ok = [r.chunk_id for r in records if r.status == "ok"]
    failed = {r.chunk_id for r in records if r.status == "failed"} - set(ok)
    latest = latest_records(ws.generated_path)
    gate_rows = sum(len(latest[k].rows) for k in summary.keys)
    ids = {c.chunk_id for c in chunks}
    checks = {
        "every chunk done or failed with a reason": set(ok) | failed == ids
        and all(r.error for r in records if r.chunk_id in failed),
        "no chunk done twice": len(ok) == len(set(ok)),
        "summary done == ok records": summary.done == len(ok),
        "summary failed == failed chunks": summary.failed == len(failed),
        "summary rows == gate rows": summary.rows == gate_rows,
        "failures_by_reason sums to failed": sum(summary.failures_by_reason.values())
        == summary.failed,
    }
    print(
        f"\n{n_chunks} chunks under 20% faults: {n_requests} requests, injected {dict(faults)}; "
        f"{elapsed:.1f} s"
    )
    print(
        f"done {summary.done}, failed {summary.failed} {summary.failures_by_reason}, rows {summary.rows}, "
        f"dropped {summary.dropped_by_filter}"
    )
    for name, passed in checks.items():
        print(f"  [{'ok' if passed else 'FAIL'}] {name}")
    return {"checks": checks, "summary": summary}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=320)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fault-chunks", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rates = throughput(args.chunks, args.rounds, Path(tmp))
        faults = fault_run(args.fault_chunks, Path(tmp))
    ok = (
        rates["generator"] >= 0.9 * rates["gather"]
        and rates["generator"] >= 10 * rates["sequential"]
        and all(faults["checks"].values())  # type: ignore[union-attr]
    )
    print("\nPASS" if ok else "\nFAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
