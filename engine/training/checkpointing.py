"""Activation checkpointing switched on in the encoder itself, the same way on every supported stack.

The trainer's own switch is not one call across versions: transformers 5 passes
``every_n_layers`` to ``gradient_checkpointing_enable``, which sentence-transformers 5.x does not
accept (a TypeError before the first step), and transformers 4.x has no
``activation_checkpointing_enable``. Each transformers model inside the sentence-transformers
model supports one of the two names itself, so it is asked directly and the trainer is told
nothing.
"""

from __future__ import annotations

from typing import Any

from ragtune.engine.core.errors import ConfigError

# Non-reentrant checkpointing works with frozen embeddings (LoRA), with inputs that need no
# gradient, and under DDP without find_unused_parameters; transformers 5 defaults to it too.
CHECKPOINT_KWARGS = {"use_reentrant": False}


def enable_checkpointing(model: Any, key: str) -> list[str]:
    """Checkpoint every layer of each transformers model in ``model``; returns their names.

    ``key`` is the setting that asked for it, named in the error when the encoder cannot.
    """
    from transformers import PreTrainedModel

    enabled: list[str] = []
    refused: list[str] = []
    for name, module in model.named_modules():
        if not isinstance(module, PreTrainedModel):
            continue
        if any(name.startswith(f"{done}.") or not done for done in enabled):
            continue
        if not getattr(module, "supports_gradient_checkpointing", False):
            refused.append(type(module).__name__)
            continue
        if hasattr(module, "activation_checkpointing_enable"):
            module.activation_checkpointing_enable(
                activation_checkpointing_kwargs=CHECKPOINT_KWARGS
            )
        else:
            module.gradient_checkpointing_enable(gradient_checkpointing_kwargs=CHECKPOINT_KWARGS)
        enabled.append(name)
    if not enabled:
        raise ConfigError(
            key,
            True,
            f"false: {', '.join(refused) or 'this model'} does not support activation "
            "checkpointing; lower the batch size or max_seq_length instead",
        )
    return enabled


def is_checkpointing(model: Any) -> bool:
    """True when some layer of ``model`` recomputes its activations in the backward pass."""
    return any(getattr(m, "gradient_checkpointing", False) is True for m in model.modules())
