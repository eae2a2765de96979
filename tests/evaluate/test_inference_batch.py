"""eval.batch_size = 0 (auto) sizes the encoding batch to the device, and the inference dtype
follows the run's precision on a GPU: CPU facts are this machine's, GPU facts are injected
into the probes (free memory, bf16 support), never into the encoder."""

from __future__ import annotations

import pytest

from ragtune.engine.config import RunConfig
from ragtune.engine.core import models
from ragtune.engine.core.gpu import out_of_memory_error
from ragtune.engine.core.models import encode_batch_size, inference_dtype
from ragtune.engine.stages import plan


def _probe_must_not_run(device: str) -> float:
    raise AssertionError(f"free memory of {device} probed although the batch was set")


def test_auto_is_the_default_and_is_64_on_cpu_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = RunConfig()
    assert cfg.eval.batch_size == 0
    monkeypatch.setattr(models, "free_memory_gib", _probe_must_not_run)
    assert cfg.eval.encode_batch("cpu") == 64
    assert cfg.eval.encode_batch("mps") == 64
    cfg.eval.batch_size = 48
    assert cfg.eval.encode_batch("cuda") == 48  # set by the user: kept, nothing probed
    # Not a result-changing setting: auto and an explicit number give one fingerprint.
    auto = plan(RunConfig()).fingerprint("evaluate")
    assert plan(RunConfig.from_dict({"eval": {"batch_size": 256}})).fingerprint("evaluate") == auto
    assert RunConfig.from_dict({"eval": {"batch_size": 0}}).eval.batch_size == 0
    assert "0 = sized to the device" in _help("batch_size")


def _help(name: str) -> str:
    from dataclasses import fields

    from ragtune.engine.config.evaluation import EvalConfig

    return next(f.metadata["help"] for f in fields(EvalConfig) if f.name == name)


@pytest.mark.parametrize(
    ("free_gib", "batch"),
    [(2.0, 64), (12.0, 64), (20.0, 128), (40.0, 256), (78.0, 512), (139.0, 1024)],
)
def test_auto_on_a_gpu_follows_its_free_memory(
    monkeypatch: pytest.MonkeyPatch, free_gib: float, batch: int
) -> None:
    probed: list[str] = []

    def free(device: str) -> float:
        probed.append(device)
        return free_gib

    monkeypatch.setattr(models, "free_memory_gib", free)
    assert RunConfig().eval.encode_batch("cuda:1") == batch
    assert probed == ["cuda:1"]
    # What the function promises: a power of two, about 8 per free GiB, within 64..1024.
    assert batch & (batch - 1) == 0 and 64 <= batch <= 1024
    assert batch <= max(64, 8 * free_gib) < 2 * batch or batch in (64, 1024)


def test_an_out_of_memory_while_encoding_names_the_auto_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(models, "free_memory_gib", lambda device: 78.0)
    monkeypatch.setattr(models, "_last_auto_batch", 0)
    cfg = RunConfig()
    unknown = out_of_memory_error("evaluate", cfg, RuntimeError("CUDA out of memory. Tried"))
    assert "eval.batch_size = 0 (auto)" in unknown.message
    assert "set eval.batch_size = 64" in unknown.hint
    assert cfg.eval.encode_batch("cuda") == 512
    err = out_of_memory_error("evaluate", cfg, RuntimeError("CUDA out of memory. Tried"))
    assert "eval.batch_size = 0 (auto: 512 for the GPU's free memory)" in err.message
    assert "set eval.batch_size = 256" in err.hint


def test_inference_dtype_is_the_training_precision_on_a_gpu_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    monkeypatch.setattr(models, "has_native_bf16", lambda device: True)
    assert inference_dtype("auto", "cuda") == torch.bfloat16
    assert inference_dtype("fp16", "cuda") == torch.float16
    assert inference_dtype("fp32", "cuda") == torch.float32
    monkeypatch.setattr(models, "has_native_bf16", lambda device: False)  # a T4 or V100
    assert inference_dtype("auto", "cuda:0") == torch.float16
    for precision in ("auto", "bf16", "fp16", "fp32"):
        assert inference_dtype(precision, "cpu") == torch.float32
    assert encode_batch_size(0, "cpu") == 64


def test_for_inference_casts_on_a_gpu_and_leaves_cpu_weights_alone(
    monkeypatch: pytest.MonkeyPatch, tiny_bert
) -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_bert), device="cpu")
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert models.for_inference(model, "auto", "cpu") is model
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # With the GPU facts injected, the dtype it casts to is the training precision's; the
    # cast itself runs here on CPU (a GPU would hold the same dtype).
    monkeypatch.setattr(models, "has_native_bf16", lambda device: True)
    models.for_inference(model, "auto", "cuda")
    assert next(model.parameters()).dtype == torch.bfloat16
    emb = model.encode(["a short passage"], convert_to_numpy=True)
    assert emb.dtype.name == "float32"  # sentence-transformers upcasts bf16 for numpy
