"""Cost before you pay: calls, tokens and price of a generation run, from litellm's price map."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ragtune.engine.config.llm import LlmConfig
from ragtune.engine.core.records import Chunk
from ragtune.engine.generate.llm_client import import_litellm
from ragtune.engine.generate.llm_prompts import Prompts, answer_message, queries_message

# Rough reply sizes in tokens; the estimate says so in its note.
QUERY_TOKENS = 25
ANSWER_TOKENS = 60
JSON_OVERHEAD = 30


@dataclass
class CostEstimate:
    calls: int
    input_tokens: int
    output_tokens: int
    usd: float | None
    note: str

    def describe(self) -> str:
        price = f"about ${self.usd:,.2f}" if self.usd is not None else "unknown price"
        return (
            f"{self.calls:,} calls, ~{self.input_tokens:,} input and ~{self.output_tokens:,} "
            f"output tokens: {price} ({self.note})"
        )


def _price(model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    litellm = import_litellm()
    try:
        cost_in, cost_out = litellm.cost_per_token(
            model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )
    except Exception:
        return None
    return float(cost_in) + float(cost_out)


def estimate_cost(
    chunks: Sequence[Chunk], llm_cfg: LlmConfig, prompts: Prompts | None = None
) -> CostEstimate:
    """Tokens counted with the model's tokenizer (litellm's fallback when it has none)."""
    litellm = import_litellm()
    prompts = prompts or Prompts.defaults()
    separate = bool(llm_cfg.answer_model) and "answer" in llm_cfg.tasks
    inline = "answer" in llm_cfg.tasks and not separate
    q = llm_cfg.queries_per_chunk
    q_in = q_out = a_in = a_out = 0
    for chunk in chunks:
        user = queries_message(
            prompts,
            llm_cfg,
            chunk.text,
            title=chunk.title,
            source=chunk.source,
            with_answers=inline,
        )
        messages = [
            {"role": "system", "content": prompts.system},
            {"role": "user", "content": user},
        ]
        q_in += litellm.token_counter(model=llm_cfg.model, messages=messages)
        out = JSON_OVERHEAD + q * (QUERY_TOKENS + (ANSWER_TOKENS if inline else 0))
        if "hard_negative_query" in llm_cfg.tasks:
            out += QUERY_TOKENS
        if "reranking_passages" in llm_cfg.tasks:
            out += 2 * max(chunk.n_tokens, len(chunk.text) // 4)
        q_out += min(out, llm_cfg.max_tokens)
        if separate:
            answer = answer_message(prompts, chunk.text, ["x" * 80] * q)
            a_msgs = [
                {"role": "system", "content": prompts.system},
                {"role": "user", "content": answer},
            ]
            a_in += litellm.token_counter(model=llm_cfg.answer_model, messages=a_msgs)
            a_out += min(JSON_OVERHEAD + q * ANSWER_TOKENS, llm_cfg.max_tokens)
    calls = len(chunks) * (2 if separate else 1)
    usd = _price(llm_cfg.model, q_in, q_out) if chunks else 0.0
    unknown = [] if usd is not None else [llm_cfg.model]
    if separate and chunks:
        a_usd = _price(llm_cfg.answer_model, a_in, a_out)
        if a_usd is None:
            unknown.append(llm_cfg.answer_model)
        usd = None if usd is None or a_usd is None else usd + a_usd
    if unknown:
        note = f"unknown price: litellm's price map does not list {', '.join(unknown)}"
        if llm_cfg.api_base:
            note += " (a self-hosted server costs only its compute)"
    else:
        note = "litellm price map; output tokens are an estimate, retries not included"
    return CostEstimate(calls, q_in + a_in, q_out + a_out, usd, note)


def estimate_workspace_cost(
    chunks: Sequence[Chunk], llm_cfg: LlmConfig, prompts_dir: Path
) -> CostEstimate:
    """The estimate with the prompts the run will send: the workspace's, edits included."""
    return estimate_cost(chunks, llm_cfg, Prompts.load(prompts_dir))
