"""`ask` on a trained tiny workspace: ranking, rerank fusion, Matryoshka dims, cache, compare, LLM answer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from llm_server import FakeLlmServer
from reranker_workspace import build_workspace, one_torch_thread, tiny_config

from ragtune.engine.config import load_config
from ragtune.engine.core.errors import InputError
from ragtune.engine.core.events import Emitter
from ragtune.engine.reranker.evaluate import fuse
from ragtune.engine.reranker.train import run_reranker_stage
from ragtune.engine.serve.ask import Searcher, ask, clear_cache, get_searcher

_threads = pytest.fixture(scope="module", autouse=True)(one_torch_thread)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory, minilm_path: Path, tiny_bert: Path):
    """MiniLM retrieves (no fine-tuned embedder: the base is used), a tiny reranker is trained."""
    ws = build_workspace(tmp_path_factory.mktemp("askws"), n=40)
    cfg = tiny_config(ws, minilm_path, tiny_bert, fusion_weight=0.3)
    run_reranker_stage(cfg, ws, Emitter())
    clear_cache()
    yield ws
    clear_cache()


def test_ask_ranks_chunks_with_sources_and_scores(ws) -> None:
    plain = ask(ws, "Where does the glimmerfox live?", top_k=3, rerank=False)
    assert not plain.reranked and len(plain.hits) == 3
    top = plain.hits[0]
    assert "glimmerfox lives only in" in top.text
    assert top.source.endswith(".md") and top.heading == "Habitat" and top.rank == 1
    assert top.rerank_score is None
    assert [h.retriever_score for h in plain.hits] == sorted(
        (h.retriever_score for h in plain.hits), reverse=True
    )

    reranked = ask(ws, "Where does the glimmerfox live?", top_k=5)
    assert reranked.reranked and reranked.fusion_weight == pytest.approx(0.3)
    assert all(h.rerank_score is not None for h in reranked.hits)
    assert [h.score for h in reranked.hits] == sorted(
        (h.score for h in reranked.hits), reverse=True
    )


def test_fused_scores_follow_the_saved_weight(ws) -> None:
    searcher = get_searcher(ws)
    hits = searcher.search("What does the tarnwhale eat?", top_k=searcher.candidates)
    retr = np.array([h.retriever_score for h in hits])
    rr = np.array([h.rerank_score for h in hits])
    assert np.allclose([h.score for h in hits], fuse(retr, rr, 0.3), atol=1e-6)


def test_matryoshka_dim_and_bad_dim(ws) -> None:
    small = ask(ws, "Who first described the emberhare?", top_k=3, dim=128, rerank=False)
    full = ask(ws, "Who first described the emberhare?", top_k=3, rerank=False)
    assert small.dim == 128
    assert small.hits[0].retriever_score != pytest.approx(full.hits[0].retriever_score)
    with pytest.raises(InputError):
        ask(ws, "anything", dim=4096)
    with pytest.raises(InputError):
        ask(ws, "   ")


def test_corpus_embeddings_cached_in_workspace(ws) -> None:
    first = get_searcher(ws)
    cached = list((ws.root / "index").glob("corpus-*.npy"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    again = Searcher(ws, first.embedder_name)
    assert cached[0].stat().st_mtime_ns == stamp
    assert np.array_equal(again.corpus_emb, first.corpus_emb)
    assert get_searcher(ws) is first


def test_compare_shows_base_side_by_side(ws) -> None:
    result = ask(ws, "What does the quillboar eat?", top_k=3, compare=True)
    assert result.base_hits is not None and len(result.base_hits) == 3
    assert result.base_models["embedder"] == load_config(ws.config_path).embedder.base_model
    # The base "reranker" is an encoder with no trained head, so it is not used for the base side.
    assert result.base_models["reranker"] == ""
    assert any("no trained head" in n for n in result.notes)


def test_llm_answer_cites_passages(ws) -> None:
    def reply(body: dict) -> str:
        prompt = body["messages"][-1]["content"]
        assert "[1] (" in prompt and "<question>" in prompt
        return "The quillboar eats mostly what passage [1] says, see also [2, 1]."

    cfg_path = ws.config_path
    original = cfg_path.read_text()
    with FakeLlmServer(reply=reply) as server:
        cfg = load_config(cfg_path)
        cfg.generation.llm.model = "openai/tiny"
        cfg.generation.llm.api_base = server.url
        cfg.generation.llm.max_retries = 0
        cfg.save(cfg_path)
        try:
            result = ask(ws, "What does the quillboar eat?", top_k=3, llm_answer=True)
        finally:
            cfg_path.write_text(original)
    assert result.answer and "[1]" in result.answer
    assert [h.rank for h in result.citations] == [1, 2]
    no_llm = ask(ws, "What does the quillboar eat?", top_k=3, llm_answer=True)
    assert no_llm.answer is None and any("no LLM configured" in n for n in no_llm.notes)


def test_render_result_for_the_cli(ws) -> None:
    from rich.console import Console

    from ragtune.engine.serve.ask import render_result

    result = ask(ws, "Where does the driftseal live?", top_k=2, compare=True)
    console = Console(record=True, width=160)
    console.print(render_result(result))
    text = console.export_text()
    assert "fine-tuned: reranked" in text and "base: base retriever" in text
    assert result.hits[0].source in text and "note:" in text


def test_a_model_saved_after_the_first_question_is_what_the_next_one_uses(
    ws, tmp_path: Path, minilm_path: Path
) -> None:
    """The wizard keeps one process for a whole run: a question asked before training finished
    must not pin the base model for the questions after it."""
    import shutil

    from ragtune.engine.core.workspace import Workspace

    copy = Workspace(tmp_path / "ws")
    shutil.copytree(ws.root, copy.root)
    before = get_searcher(copy)
    assert get_searcher(copy) is before, "unchanged workspace: the cached searcher"
    assert Path(before.embedder_name) != copy.embedder_dir

    shutil.copytree(minilm_path, copy.embedder_dir)  # training saved its model
    after = get_searcher(copy)
    assert after is not before
    assert Path(after.embedder_name) == copy.embedder_dir
    assert ask(copy, "Where does the glimmerfox live?", top_k=3, rerank=False).fine_tuned
