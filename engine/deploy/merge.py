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
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def dropout_as_in(model: SentenceTransformer, reference: SentenceTransformer) -> Iterator[None]:
    """``model``'s dropout settings read as ``reference``'s for the duration.

    A ragtune model is trained with attention dropout 0 by default and its saved config says
    so; sentence-transformers' merge compares the configs and refuses the base's 0.1 as a
    different architecture, although dropout does nothing at inference."""
    from torch import nn
    from transformers import PretrainedConfig

    changed: list[tuple[object, str, object]] = []
    try:
        for mine, theirs in zip(model.modules(), reference.modules(), strict=False):
            if isinstance(mine, nn.Dropout) and isinstance(theirs, nn.Dropout):
                if mine.p != theirs.p:
                    changed.append((mine, "p", mine.p))
                    mine.p = theirs.p
                continue
            ours, ref = getattr(mine, "config", None), getattr(theirs, "config", None)
            if not (isinstance(ours, PretrainedConfig) and isinstance(ref, PretrainedConfig)):
                continue
            for key, value in ref.to_dict().items():
                if "dropout" in key and hasattr(ours, key) and getattr(ours, key) != value:
                    changed.append((ours, key, getattr(ours, key)))
                    setattr(ours, key, value)
        yield
    finally:
        for config, key, value in reversed(changed):
            setattr(config, key, value)


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
        with dropout_as_in(base, tuned):
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
