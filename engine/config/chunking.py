"""How documents are cut into passages the retriever will return."""

from __future__ import annotations

from dataclasses import dataclass

from ragtune.engine.config.base import Section, setting
from ragtune.engine.core.errors import ConfigError


@dataclass
class ChunkingConfig(Section):
    max_tokens: int = setting(
        256,
        help="longest chunk in tokens of the tokenizer below; capped at the model's max length",
        minimum=16,
        maximum=8192,
    )
    overlap_tokens: int = setting(32, help="tokens shared by consecutive chunks", minimum=0)
    min_tokens: int = setting(24, help="chunks shorter than this are dropped", minimum=1)
    tokenizer: str = setting("", help="tokenizer name or path; empty = the embedder's base model")
    respect_headings: bool = setting(True, help="start a new chunk at every heading")

    def check(self) -> None:
        if self.overlap_tokens * 2 > self.max_tokens:
            raise ConfigError(
                "chunking.overlap_tokens",
                self.overlap_tokens,
                f"at most half of max_tokens ({self.max_tokens // 2})",
            )
        if self.min_tokens >= self.max_tokens:
            raise ConfigError(
                "chunking.min_tokens", self.min_tokens, f"less than max_tokens ({self.max_tokens})"
            )
