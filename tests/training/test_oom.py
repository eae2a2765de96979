"""A CUDA out-of-memory ends as a named error with the batch in use and what to change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ragtune.engine.config import RunConfig
from ragtune.engine.core.errors import OutOfMemory, RagtuneError
from ragtune.engine.core.events import RunFailed, read_events
from ragtune.engine.core.gpu import is_out_of_memory, named_oom, out_of_memory_error

TORCH_MESSAGE = (
    "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 23.53 GiB "
    "of which 1.06 GiB is free. Including non-PyTorch memory, this process has 22.4 GiB in use."
)


def _oom() -> torch.OutOfMemoryError:
    """The error torch raises; constructed here only to inject the failure."""
    return torch.OutOfMemoryError(TORCH_MESSAGE)


@pytest.mark.slow
def test_oom_in_training_exits_1_with_the_batch_and_the_fixes(
    tmp_path: Path, tiny_bert: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from sentence_transformers import SentenceTransformerTrainer

    from ragtune.engine.cli import main
    from tests.test_pipeline import tiny_config

    cfg = tiny_config(tmp_path, tiny_bert)

    def out_of_memory(self: object, *args: object, **kwargs: object) -> None:
        raise _oom()

    # The real stage runs up to its first step: model, loss, trainer, data loader.
    monkeypatch.setattr(SentenceTransformerTrainer, "training_step", out_of_memory)
    code = main(["run", str(tmp_path / "config.toml"), "--stages", "ingest,generate,prepare,train"])
    err = capsys.readouterr().err

    assert code == 1
    assert "ran out of memory training the embedder with embedder.batch_size = 8" in err
    assert "Tried to allocate 2.00 GiB" in err
    # distill is an in-batch loss: accumulation would not keep its negatives, cached_mnrl does.
    assert "embedder.batch_size = 4" in err and "cached_mnrl" in err
    assert "embedder.gradient_checkpointing = true" in err
    assert "embedder.max_seq_length = 256" in err
    assert "Traceback" not in err and "this is a bug" not in err

    failed = [
        e for e in read_events(cfg.workspace_dir / "events.jsonl") if isinstance(e, RunFailed)
    ]
    assert failed[-1].error_type == "OutOfMemory"
    assert "embedder.batch_size = 8" in failed[-1].error and "cached_mnrl" in failed[-1].hint


def test_the_advice_follows_the_loss_and_what_is_already_on() -> None:
    cfg = RunConfig.from_dict(
        {
            "embedder": {
                "loss": "gpl",
                "hard_negatives": 1,
                "batch_size": 64,
                "gradient_accumulation_steps": 2,
                "gradient_checkpointing": True,
                "max_seq_length": 128,
            },
            "eval": {"batch_size": 64},  # set by hand; auto is in test_inference_batch
        }
    )
    err = out_of_memory_error("train", cfg, _oom())
    assert isinstance(err, OutOfMemory) and err.where == "embedder.batch_size"
    # MarginMSE has no in-batch negatives, so accumulation keeps the effective batch (128).
    assert "embedder.batch_size = 32 with embedder.gradient_accumulation_steps = 4" in err.hint
    assert "effective batch of 128" in err.hint
    assert "gradient_checkpointing" not in err.hint and "max_seq_length" not in err.hint

    rerank = out_of_memory_error("rerank", cfg, _oom())
    assert "reranker.batch_size = 16" in rerank.message
    assert "reranker.batch_size = 8 with reranker.gradient_accumulation_steps = 2" in rerank.hint
    assert "reranker.gradient_checkpointing = true" in rerank.hint
    assert "reranker.max_length = 256" in rerank.hint

    evaluate = out_of_memory_error("evaluate", cfg, _oom())
    assert "eval.batch_size = 64" in evaluate.message and "eval.batch_size = 32" in evaluate.hint
    mining = out_of_memory_error("train", cfg, _oom(), phase="mining hard negatives")
    assert "while mining hard negatives with eval.batch_size = 64" in mining.message


def test_only_out_of_memory_is_renamed() -> None:
    cfg = RunConfig()
    with pytest.raises(OutOfMemory), named_oom("evaluate", cfg):
        raise _oom()
    # Wrapped by a library (accelerate re-raises with the cause attached).
    try:
        raise _oom()
    except torch.OutOfMemoryError as inner:
        wrapped = RuntimeError("step failed")
        wrapped.__cause__ = inner
    assert is_out_of_memory(wrapped)
    with pytest.raises(ValueError), named_oom("train", cfg):
        raise ValueError("not memory")
    with pytest.raises(RagtuneError, match="named"), named_oom("train", cfg):
        raise RagtuneError("already named")


def test_a_rank_out_of_memory_comes_back_as_the_same_class(tmp_path: Path) -> None:
    from ragtune.engine.training.launch import _rank_error

    err = out_of_memory_error("train", RunConfig(), _oom())
    (tmp_path / "error.rank1.json").write_text(
        json.dumps({"type": "OutOfMemory", "message": err.message, "hint": err.hint})
    )
    back = _rank_error(tmp_path)
    assert isinstance(back, OutOfMemory) and back.exit_code == 1
    assert back.message == err.message and back.hint == err.hint
