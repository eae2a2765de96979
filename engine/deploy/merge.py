"""Base <-> fine-tuned weight interpolation (LM-Cocktail / WiSE-FT), its weight chosen on held-out queries.

Fine-tuning on a few hundred generated queries can lose general skill the base model had;
averaging the two models' weights often keeps most of the gain and gives back the rest
(Xiao et al. 2023, LM-Cocktail; Wortsman et al. 2022, WiSE-FT). The weight is chosen on one
half of the held-out queries and reported on the other half, so the reported number is not
the maximum of several noisy ones. The corpus rotation is refitted on each mixture, as
training does for the fine-tuned model, so the weight 0 end is exactly "base + rotation".
"""

from __future__ import annotations

import copy
import importlib.util
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def strip_rotation(model: SentenceTransformer) -> SentenceTransformer:
    """The model without its trailing corpus rotation (a bias-free identity-activation Dense)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense

    modules = list(model)
    last = modules[-1]
    if (
        isinstance(last, Dense)
        and getattr(last.linear, "bias", None) is None
        and isinstance(last.activation_function, torch.nn.Identity)
    ):
        core = SentenceTransformer(modules=modules[:-1], device=str(model.device))
        core.prompts = dict(model.prompts)
        core.default_prompt_name = model.default_prompt_name
        return core
    return model


def merge_method() -> str:
    """sentence-transformers' mergekit merge when mergekit is installed, else plain interpolation."""
    return "mergekit linear" if importlib.util.find_spec("mergekit") else "state-dict interpolation"


def interpolate(
    tuned: SentenceTransformer, base: SentenceTransformer, weight: float
) -> SentenceTransformer:
    """``weight`` x fine-tuned + (1 - weight) x base, tensor by tensor; prompts from the fine-tuned.

    Both models must be rotation-free (``strip_rotation``) and share one architecture.
    """
    from sentence_transformers import SentenceTransformer

    if importlib.util.find_spec("mergekit"):
        merged = SentenceTransformer.merge(
            [tuned, base],
            method="linear",
            parameters={"weight": [weight, 1.0 - weight]},
            device=str(tuned.device),
        )
    else:
        from ragtune.engine.embedder.train import soup

        merged = copy.deepcopy(tuned)
        soup(merged, base, weight)
    merged.prompts = dict(tuned.prompts)
    merged.default_prompt_name = tuned.default_prompt_name
    return merged
