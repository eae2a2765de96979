"""Which generator writes the training queries, and the LLM-free generator's recipe."""

from __future__ import annotations

from dataclasses import dataclass, field

from ragtune.engine.config.base import Section, setting
from ragtune.engine.config.llm import LlmConfig


@dataclass
class LlmFreeConfig(Section):
    """Pseudo-queries cut from the chunks themselves; needs no key and no network."""

    cloze_queries: int = setting(
        1, help="sentences held out of each chunk as queries (inverse cloze task)", minimum=0
    )
    title_queries: bool = setting(True, help="use document titles and headings as queries")
    keyword_queries: int = setting(
        1, help="keyword queries per chunk from its rarest terms", minimum=0
    )
    keep_sentence_prob: float = setting(
        0.1,
        help="chance that a held-out sentence is also kept in the positive passage",
        minimum=0.0,
        maximum=1.0,
    )
    min_sentence_words: int = setting(
        6, help="shorter sentences are not used as queries", minimum=1
    )
    lead_max_words: int = setting(
        30,
        help="without a title, a first sentence up to this long is the chunk's lead query",
        minimum=1,
    )
    max_queries_per_chunk: int = setting(
        0,
        help="keep at most this many queries per chunk, picked at random (0 = all: every kind, "
        "which measured better than one per chunk on medline and cisi, at about 3x the training time)",
        minimum=0,
    )
    seed: int = setting(13, help="seed for picking held-out sentences and keywords")


@dataclass(frozen=True)
class GeneratorChoice:
    """A generator a run can pick. Its implementation is ``ragtune.engine.generate.registry``'s entry of
    the same name (config sits below the stage packages, so the two are tied by a test)."""

    name: str
    calls_llm: bool
    """It calls a model: a key, the network, a cost; its held-out queries are written by it."""


LLM_FREE = "llm-free"
LITELLM = "litellm"
GENERATORS: dict[str, GeneratorChoice] = {
    g.name: g for g in (GeneratorChoice(LLM_FREE, False), GeneratorChoice(LITELLM, True))
}


@dataclass
class GenerationConfig(Section):
    generator: str = setting(
        "auto",
        help=f"auto = {LITELLM} when llm.model is set, else {LLM_FREE}",
        choices=("auto", *GENERATORS),
    )
    max_failed_share: float = setting(
        0.1,
        help="stop the run when more than this share of chunks failed generation; below it, "
        "training goes on without them and the next run retries them",
        minimum=0.0,
        maximum=1.0,
        fingerprint=False,
    )
    llm_free: LlmFreeConfig = field(default_factory=LlmFreeConfig)
    llm: LlmConfig = field(default_factory=LlmConfig)

    @property
    def resolved(self) -> str:
        if self.generator != "auto":
            return self.generator
        return LITELLM if self.llm.model else LLM_FREE

    @property
    def calls_llm(self) -> bool:
        """The generator that runs calls a model (so it needs generation.llm, and costs)."""
        return GENERATORS[self.resolved].calls_llm
