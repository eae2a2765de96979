"""The GPUs seen from here: NVML samples while training runs, an out-of-memory error that says what
to change, and a training batch size proposed for the memory there is."""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ragtune.engine.core.errors import OutOfMemory, RagtuneError
from ragtune.engine.core.events import Emitter, GpuSample

if TYPE_CHECKING:
    from ragtune.engine.config import RunConfig
    from ragtune.engine.config.training import EmbedderConfig


def _nvml() -> Any | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:
        return None


def read_gpus(rank: int = 0) -> list[GpuSample]:
    """One sample per visible GPU; empty when there is no NVIDIA driver (the TUI says "no GPU")."""
    nvml = _nvml()
    if nvml is None:
        return []
    samples = []
    try:
        for i in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            util = nvml.nvmlDeviceGetUtilizationRates(handle)
            mem = nvml.nvmlDeviceGetMemoryInfo(handle)
            name = nvml.nvmlDeviceGetName(handle)
            samples.append(
                GpuSample(
                    index=i,
                    rank=rank,
                    name=name.decode() if isinstance(name, bytes) else str(name),
                    utilization=float(util.gpu),
                    memory_used_mb=mem.used / 2**20,
                    memory_total_mb=mem.total / 2**20,
                    temperature_c=float(
                        nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)
                    ),
                )
            )
    except Exception:
        return samples
    return samples


class GpuMonitor:
    """Samples every ``interval`` seconds on a daemon thread while a stage runs."""

    def __init__(self, events: Emitter, interval: float = 2.0) -> None:
        self.events = events
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> GpuMonitor:
        if _nvml() is not None:
            self._thread = threading.Thread(target=self._loop, daemon=True, name="gpu-monitor")
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            for sample in read_gpus():
                self.events.emit(sample)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 1)


def visible_gpus() -> list[GpuSample]:
    """The GPUs this process may use: NVML lists every GPU, CUDA_VISIBLE_DEVICES narrows them."""
    samples = read_gpus()
    ids = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if "CUDA_VISIBLE_DEVICES" in os.environ and all(v.isdigit() for v in ids):
        return [s for s in samples if str(s.index) in ids]
    return samples


# -- out of memory


def is_out_of_memory(exc: BaseException) -> bool:
    """torch's OutOfMemoryError, or an error caused by one (accelerate and the trainer re-raise)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if type(cur).__name__ == "OutOfMemoryError" or "CUDA out of memory" in str(cur)[:200]:
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def _first_sentences(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return ". ".join(text.split(". ")[:3])[:300]


def _training_advice(section: str, c: Any, in_batch: bool) -> list[str]:
    """What lowers a trainer's memory, most effective first, skipping what is already on."""
    half = max(1, c.batch_size // 2)
    accum = c.gradient_accumulation_steps * 2
    advice = []
    if in_batch:
        advice.append(
            f"{section}.batch_size = {half} (gradient accumulation would not keep the in-batch "
            f"negatives of {c.batch_size}; {section}.loss = cached_mnrl keeps a large batch at "
            f"the memory of {section}.mini_batch_size)"
        )
    else:
        advice.append(
            f"{section}.batch_size = {half} with {section}.gradient_accumulation_steps = "
            f"{accum}, which keeps the effective batch of {c.batch_size * c.gradient_accumulation_steps}"
        )
    if not getattr(c, "gradient_checkpointing", False):
        advice.append(f"{section}.gradient_checkpointing = true (slower steps, far less memory)")
    length_key = "max_seq_length" if hasattr(c, "max_seq_length") else "max_length"
    length = getattr(c, length_key, 0)
    if not length or length > 256:
        advice.append(f"{section}.{length_key} = 256 (shorter inputs)")
    if c.precision == "fp32":
        advice.append(f'{section}.precision = "auto" (bf16/fp16 halves the activations)')
    return advice


def out_of_memory_error(
    stage: str, cfg: RunConfig, exc: BaseException, *, phase: str = ""
) -> OutOfMemory:
    """The named error for a CUDA out-of-memory in ``stage`` (or an encoding ``phase`` of it)."""
    detail = _first_sentences(exc)
    encoding = bool(phase) or stage not in ("train", "rerank")
    if encoding:
        from ragtune.engine.core.models import ENCODE_BATCH_CPU, last_auto_batch

        batch = cfg.eval.batch_size
        what = phase or f"stage {stage}"
        in_use = f"eval.batch_size = {batch}"
        if batch == 0:
            batch = last_auto_batch()
            in_use = "eval.batch_size = 0 (auto" + (
                f": {batch} for the GPU's free memory)" if batch else ")"
            )
            batch = batch or 2 * ENCODE_BATCH_CPU
        return OutOfMemory(
            f"the GPU ran out of memory while {what} with {in_use} ({detail})",
            where="eval.batch_size",
            hint=f"set eval.batch_size = {max(1, batch // 2)} (encoding only: results do not "
            "change), or free the GPU of other processes (nvidia-smi)",
        )
    if stage == "train":
        section, c = "embedder", cfg.embedder
        in_batch = c.loss in ("mnrl", "distill", "gist")
    else:
        section, c = "reranker", cfg.reranker
        in_batch = False
    advice = _training_advice(section, c, in_batch)
    return OutOfMemory(
        f"the GPU ran out of memory training the {section} with {section}.batch_size = "
        f"{c.batch_size} per GPU ({detail})",
        where=f"{section}.batch_size",
        hint="set one of: " + "; ".join(advice),
    )


@contextmanager
def named_oom(stage: str, cfg: RunConfig, *, phase: str = "") -> Iterator[None]:
    """Turns a CUDA out-of-memory raised inside into ``OutOfMemory``; other errors pass."""
    try:
        yield
    except RagtuneError:
        raise
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        _release_cuda_memory()
        raise out_of_memory_error(stage, cfg, exc, phase=phase) from None


def _release_cuda_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# -- a training batch for the memory there is


@dataclass(frozen=True)
class BatchProposal:
    """A per-GPU training batch for the detected memory, with the arithmetic behind it."""

    batch_size: int
    reason: str
    gpu: str = ""
    memory_gib: float = 0.0


# Activation bytes per token and hidden unit of one encoder layer in 16-bit training
# (Korthikanti et al. 2022, "Reducing activation recomputation", without the s² attention
# term, which SDPA's fused kernels do not keep); a layer's input alone under checkpointing.
ACTIVATION_BYTES = 34
CHECKPOINTED_BYTES = 2
MAX_PROPOSED_BATCH = 512
RESERVED_GIB = 1.5  # CUDA context, allocator slack, the evaluator's encodes


@dataclass(frozen=True)
class ModelShape:
    layers: int
    hidden: int
    vocab: int
    max_tokens: int

    @property
    def parameters(self) -> int:
        return self.vocab * self.hidden + self.layers * 12 * self.hidden * self.hidden


def model_shape(name: str, *, trust_remote_code: bool = False) -> ModelShape | None:
    """Layers, width and input length from the model's config files; None if unreadable."""
    import json
    from pathlib import Path

    from ragtune.engine.core.models import hub_kwargs, resolve_model

    resolved = resolve_model(name)
    try:
        from transformers import AutoConfig

        folder = Path(resolved)
        st_config = folder / "sentence_bert_config.json"
        limit = 0
        if st_config.is_file():
            limit = int(json.loads(st_config.read_text()).get("max_seq_length") or 0)
        config = AutoConfig.from_pretrained(
            resolved, trust_remote_code=trust_remote_code, **hub_kwargs(resolved)
        )
    except (OSError, ValueError):
        return None
    layers = getattr(config, "num_hidden_layers", 0) or 0
    hidden = getattr(config, "hidden_size", 0) or 0
    if not (layers and hidden):
        return None
    positions = getattr(config, "max_position_embeddings", 512) or 512
    return ModelShape(layers, hidden, getattr(config, "vocab_size", 30522), limit or positions)


def propose_batch_size(
    cfg: EmbedderConfig, *, memory_gib: float | None = None, gpu: str = ""
) -> BatchProposal:
    """The largest power-of-two batch whose activations fit 80% of the GPU's memory, at most 512.

    An estimate from the model's shape, not a measurement: the first steps' GPU samples (and
    an out-of-memory error's advice) correct it.
    """
    if memory_gib is None:
        gpus = visible_gpus()
        if not gpus:
            return BatchProposal(
                cfg.batch_size, f"no GPU detected: the batch stays at {cfg.batch_size}"
            )
        smallest = min(gpus, key=lambda g: g.memory_total_mb)
        memory_gib, gpu = smallest.memory_total_mb / 1024, smallest.name
    shape = model_shape(cfg.base_model, trust_remote_code=cfg.trust_remote_code)
    if shape is None:
        return BatchProposal(
            cfg.batch_size,
            f"could not read {cfg.base_model}'s shape: the batch stays at {cfg.batch_size}",
            gpu,
            memory_gib,
        )
    tokens = min(cfg.max_seq_length or shape.max_tokens, shape.max_tokens)
    sequences = 2 + cfg.hard_negatives
    half = cfg.precision != "fp32"
    per_token = CHECKPOINTED_BYTES if cfg.gradient_checkpointing else ACTIVATION_BYTES
    per_row = sequences * tokens * shape.hidden * shape.layers * per_token * (1 if half else 2)
    if cfg.gradient_checkpointing:
        per_row += sequences * tokens * shape.hidden * ACTIVATION_BYTES * (1 if half else 2)
    # fp32 weights, gradients and the two AdamW moments; a frozen teacher beside them.
    static = 16 * shape.parameters + (
        4 * shape.parameters if cfg.loss in ("distill", "gist") else 0
    )
    budget = 0.8 * memory_gib * 2**30 - static - RESERVED_GIB * 2**30
    fits = int(budget // per_row) if budget > 0 else 0
    batch = min(MAX_PROPOSED_BATCH, 2 ** int(math.log2(fits))) if fits >= 2 else 2
    where = f"{gpu} ({memory_gib:.0f} GiB)" if gpu else f"{memory_gib:.0f} GiB"
    reason = (
        f"{where}: the model (~{shape.parameters / 1e6:.0f}M parameters) takes "
        f"{static / 2**30:.1f} GiB with gradients and AdamW states; a row ({sequences} × "
        f"{tokens} tokens, {'16-bit' if half else 'fp32'}"
        f"{', checkpointed' if cfg.gradient_checkpointing else ''}) needs about "
        f"{per_row / 2**20:.0f} MiB of activations, so about {fits} rows fit in 80% of memory"
    )
    if fits > MAX_PROPOSED_BATCH:
        reason += f"; capped at {MAX_PROPOSED_BATCH} (larger batches rarely help retrieval)"
    if fits < 2:
        reason += "; not even 2 rows fit: turn on gradient_checkpointing or lower max_seq_length"
    return BatchProposal(batch, reason, gpu, memory_gib)
