"""Settings of the LLM generator (litellm): model, endpoint, limits, tasks."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ragtune.engine.config.base import Section, setting
from ragtune.engine.core.errors import ConfigError
from ragtune.engine.core.redact import looks_like_key, shown

TASKS = ("queries", "answer", "hard_negative_query", "reranking_passages")
JSON_MODES = ("auto", "schema", "object", "prompt")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass
class LlmConfig(Section):
    model: str = setting(
        "",
        help="litellm model, e.g. openai/gpt-4o-mini, ollama/llama3.1, hosted_vllm/Qwen/Qwen2.5-7B",
    )
    api_base: str = setting(
        "", help="endpoint of a local or self-hosted server, e.g. http://localhost:8000/v1"
    )
    api_key_env: str = setting(
        "", help="name of the environment variable holding the key (the key itself is never stored)"
    )
    answer_model: str = setting("", help="separate model for answers; empty = the same model")
    temperature: float = setting(0.7, minimum=0.0, maximum=2.0)
    max_tokens: int = setting(1024, help="reply token limit", minimum=16)
    timeout: float = setting(60.0, help="seconds per call", minimum=1.0, fingerprint=False)
    max_retries: int = setting(
        4, help="retries per call on 429/5xx/timeouts/bad JSON", minimum=0, fingerprint=False
    )
    concurrency: int = setting(
        16, help="calls in flight", minimum=1, maximum=1024, fingerprint=False
    )
    requests_per_minute: int = setting(0, help="0 = no limit", minimum=0, fingerprint=False)
    tokens_per_minute: int = setting(0, help="0 = no limit", minimum=0, fingerprint=False)
    queries_per_chunk: int = setting(3, help="queries written per chunk", minimum=1, maximum=20)
    tasks: list[str] = setting(
        default_factory=lambda: [t for t in TASKS if t != "answer"],
        help="row parts to generate; 'queries' is required; 'answer' only helps review "
        "(training does not read answers), so it is off by default and not billed",
        choices=None,
    )
    sample_size: int = setting(8, help="rows in a review sample", minimum=1, fingerprint=False)
    dedup_threshold: float = setting(
        0.95,
        help="cosine above which two queries count as duplicates (1 = off)",
        minimum=0.0,
        maximum=1.0,
    )
    round_trip_top_k: int = setting(
        0,
        help="keep a query only if the base embedder finds its chunk in the top k (0 = off)",
        minimum=0,
    )
    json_mode: str = setting(
        "auto",
        help="how JSON is asked for: auto = a JSON schema where litellm says the provider supports"
        " it, else JSON mode; prompt = instructions only",
        choices=JSON_MODES,
    )
    min_query_words: int = setting(2, help="shorter queries are dropped", minimum=1)
    max_query_words: int = setting(48, help="longer queries are dropped", minimum=2)
    drop_copied: bool = setting(
        True, help="drop queries that are a verbatim span of their chunk (5 words or more)"
    )
    synthetic_passages: int = setting(
        40, help="passages written in description-only mode", minimum=1
    )
    passages_per_call: int = setting(5, help="passages asked for per call", minimum=1, maximum=50)

    def check(self) -> None:
        if self.api_key_env and (
            not ENV_NAME.fullmatch(self.api_key_env) or looks_like_key(self.api_key_env)
        ):
            # A key typed here would be saved in config.toml and named in every error.
            raise ConfigError(
                "generation.llm.api_key_env",
                shown(self.api_key_env),
                "the NAME of the environment variable that holds the key (letters, digits "
                "and _, e.g. OPENAI_API_KEY), never the key itself: `export "
                "OPENAI_API_KEY=...` in the shell, or type the key in the wizard",
            )
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown or "queries" not in self.tasks:
            raise ConfigError(
                "generation.llm.tasks",
                self.tasks,
                f"a list from {list(TASKS)} containing 'queries'",
            )
        if self.min_query_words > self.max_query_words:
            raise ConfigError(
                "generation.llm.min_query_words", self.min_query_words, "at most max_query_words"
            )
