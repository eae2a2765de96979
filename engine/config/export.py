"""Where finished models go."""

from __future__ import annotations

from dataclasses import dataclass

from engine.config.base import Section, setting


@dataclass
class ExportConfig(Section):
    push_to_hub: bool = setting(False, help="upload both models to the Hugging Face Hub")
    embedder_repo: str = setting("", help="Hub repo id for the embedder, e.g. me/handbook-embed")
    reranker_repo: str = setting("", help="Hub repo id for the reranker")
    private: bool = setting(True, help="create private repos")
    token_env: str = setting("HF_TOKEN", help="environment variable holding the Hub token")
