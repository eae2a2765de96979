"""Every generator the generate stage can run, by the name ``generation.generator`` takes.

An entry says what the generator reads (the settings that change its rows, for the
stage's fingerprint), how the stage runs it, and how the wizard's samples are drawn. Adding a
generator is its module, one entry here, its name in ``ragtune.engine.config.generation.GENERATORS``,
and a test; ``tests/generate/test_registry.py`` checks that the two lists agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ragtune.engine.config.generation import LITELLM, LLM_FREE

if TYPE_CHECKING:
    from ragtune.engine.config import RunConfig
    from ragtune.engine.core.records import Chunk
    from ragtune.engine.core.stages import StageContext
    from ragtune.engine.core.workspace import Workspace
    from ragtune.engine.generate.base import GenerationSummary
    from ragtune.engine.generate.llm_cost import CostEstimate
    from ragtune.engine.generate.rows import GeneratedRow

Sample = tuple["list[GeneratedRow]", "CostEstimate | None"]


@dataclass(frozen=True)
class GeneratorEntry:
    name: str
    inputs: Callable[[RunConfig], dict[str, Any]]
    """The settings (and files) that change what it writes, as flat ``name: value`` pairs."""
    run: Callable[[StageContext, list[Chunk]], GenerationSummary]
    sample: Callable[[RunConfig, Workspace, Sequence[Chunk], int, str | None], Sample]
    """``k`` rows for review before the full run, and the full run's cost estimate if any."""


GENERATORS: dict[str, GeneratorEntry] = {}


def register(entry: GeneratorEntry) -> GeneratorEntry:
    GENERATORS[entry.name] = entry
    return entry


def generator_for(cfg: RunConfig) -> GeneratorEntry:
    """The entry of the generator this run uses (``auto`` resolved)."""
    return GENERATORS[cfg.generation.resolved]


# -- llm-free: pseudo-queries cut from the chunks


def _llm_free_inputs(cfg: RunConfig) -> dict[str, Any]:
    from ragtune.engine.core.stages import flatten_into

    out: dict[str, Any] = {}
    flatten_into("generation.llm_free", cfg.generation.llm_free.result_settings(), out)
    return out


def _llm_free_run(ctx: StageContext, chunks: list[Chunk]) -> GenerationSummary:
    from ragtune.engine.generate.llm_free import LlmFreeGenerator

    generator = LlmFreeGenerator(ctx.cfg.generation.llm_free)
    return generator.generate(chunks, ctx.ws, ctx.events, ctx.cancel)


def _llm_free_sample(
    cfg: RunConfig, ws: Workspace, chunks: Sequence[Chunk], k: int, api_key: str | None
) -> Sample:
    from ragtune.engine.generate.llm_free import LlmFreeGenerator

    return LlmFreeGenerator(cfg.generation.llm_free).sample(chunks, k), None


register(GeneratorEntry(LLM_FREE, _llm_free_inputs, _llm_free_run, _llm_free_sample))


# -- litellm: questions written by a model


def _litellm_inputs(cfg: RunConfig) -> dict[str, Any]:
    from ragtune.engine.core.stages import flatten_into
    from ragtune.engine.generate.spec import GENERATE_PROMPTS, prompt_inputs

    out: dict[str, Any] = {}
    flatten_into("generation.llm", cfg.generation.llm.result_settings(), out)
    out["sources.description"] = cfg.sources.description
    # The quality gate (dedup, round trip) embeds with the base model.
    out["embedder.base_model"] = cfg.embedder.base_model
    out.update(prompt_inputs(cfg, GENERATE_PROMPTS))
    return out


def _litellm_run(ctx: StageContext, chunks: list[Chunk]) -> GenerationSummary:
    from ragtune.engine.generate.llm import run_llm_generation

    return run_llm_generation(
        ctx.cfg, ctx.ws, chunks, ctx.events, cancel=ctx.cancel, api_key=ctx.api_key
    )


def _litellm_sample(
    cfg: RunConfig, ws: Workspace, chunks: Sequence[Chunk], k: int, api_key: str | None
) -> Sample:
    from ragtune.engine.generate.llm import sample_rows
    from ragtune.engine.generate.llm_cost import estimate_workspace_cost

    rows = sample_rows(cfg, ws, chunks, k=k, api_key=api_key)
    # After sampling: the prompts the full run will send, as written to the workspace.
    return rows, estimate_workspace_cost(chunks, cfg.generation.llm, ws.prompts_dir)


register(GeneratorEntry(LITELLM, _litellm_inputs, _litellm_run, _litellm_sample))
