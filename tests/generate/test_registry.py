"""The generator registry: one entry per choice, and the stage and samples run through it."""

from __future__ import annotations

from pathlib import Path

from llm_server import FakeLlmServer, llm_run_config
from test_llm_free import corpus

from ragtune.engine.config import RunConfig
from ragtune.engine.config.generation import GENERATORS as CHOICES
from ragtune.engine.config.generation import GenerationConfig
from ragtune.engine.core.workspace import Workspace
from ragtune.engine.generate.llm_free import LlmFreeGenerator
from ragtune.engine.generate.registry import GENERATORS, generator_for
from ragtune.engine.generate.spec import STAGE


def test_every_choice_has_an_implementation_and_no_other_exists() -> None:
    assert set(GENERATORS) == set(CHOICES)
    choices = GenerationConfig.__dataclass_fields__["generator"].metadata["choices"]
    assert choices == ("auto", *CHOICES)
    assert all(entry.name == name for name, entry in GENERATORS.items())


def test_only_the_running_generators_settings_are_inputs(tmp_path: Path) -> None:
    cfg = RunConfig.from_dict({"run": {"workspace": str(tmp_path)}})
    assert generator_for(cfg).name == "llm-free" and not cfg.generation.calls_llm
    free = STAGE.derived(cfg)
    assert free["generator"] == "llm-free"
    assert any(k.startswith("generation.llm_free.") for k in free)
    assert not any(k.startswith("generation.llm.") for k in free)

    cfg.generation.llm.model = "openai/x"  # auto now resolves to litellm
    assert generator_for(cfg).name == "litellm" and cfg.generation.calls_llm
    llm = STAGE.derived(cfg)
    assert llm["generator"] == "litellm" and llm["generation.llm.model"] == "openai/x"
    assert "prompts" in llm and not any(k.startswith("generation.llm_free.") for k in llm)


def test_llm_free_samples_are_the_generators_own_rows(tmp_path: Path) -> None:
    cfg = RunConfig.from_dict({"run": {"workspace": str(tmp_path)}})
    chunks = corpus()
    rows, estimate = generator_for(cfg).sample(cfg, Workspace.create(tmp_path), chunks, 4, None)
    assert estimate is None
    assert rows == LlmFreeGenerator(cfg.generation.llm_free).sample(chunks, 4)
    assert len(rows) == 4


def test_litellm_samples_call_the_model_and_estimate_the_full_run(tmp_path: Path) -> None:
    chunks = corpus()
    with FakeLlmServer() as server:
        cfg = llm_run_config(server.url, workspace=str(tmp_path))
        rows, estimate = generator_for(cfg).sample(cfg, Workspace.create(tmp_path), chunks, 2, None)
        asked = len(server.requests)
    assert rows and {r.chunk_id for r in rows} <= {c.chunk_id for c in chunks}
    assert asked >= 2 and estimate is not None and estimate.calls >= len(chunks)
