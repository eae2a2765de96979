"""LoRA: adapters train, merge into plain weights, and the saved model loads without peft."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ragtune.engine.config.training import EmbedderConfig

TEXTS = ["cold chain pallets at 2-8 C", "forklift battery charging", "leave request form"]


def _train_a_little(model) -> None:
    import torch
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    loss = MultipleNegativesRankingLoss(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(trainable, lr=5e-2)
    prep = getattr(model, "preprocess", None) or model.tokenize
    features = [prep(TEXTS), prep(list(reversed(TEXTS)))]
    for _ in range(3):
        optim.zero_grad()
        loss(features, None).backward()
        optim.step()


def test_lora_trains_merges_and_loads_without_peft(tiny_bert: Path, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from ragtune.engine.embedder.train import apply_lora, merge_lora

    model = SentenceTransformer(str(tiny_bert), device="cpu")
    before = model.encode(TEXTS, convert_to_numpy=True)
    apply_lora(model, EmbedderConfig(lora=True, lora_r=4, lora_alpha=8, lora_dropout=0.0))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)

    model.train()
    _train_a_little(model)
    model.eval()
    adapted = model.encode(TEXTS, convert_to_numpy=True)
    assert not np.allclose(adapted, before, atol=1e-4), "LoRA training changed nothing"

    merge_lora(model)
    assert not any("lora_" in n for n, _ in model.named_parameters())
    out = tmp_path / "merged"
    model.save(str(out))
    assert not (out / "adapter_config.json").exists()
    np.save(tmp_path / "adapted.npy", adapted)

    # A fresh interpreter where importing peft fails: the merged folder must not need it.
    script = f"""
import sys, json
import numpy as np
sys.modules["peft"] = None
from sentence_transformers import SentenceTransformer
m = SentenceTransformer({str(out)!r}, device="cpu")
emb = m.encode({TEXTS!r}, convert_to_numpy=True)
ref = np.load({str(tmp_path / "adapted.npy")!r})
print(json.dumps(float(np.abs(emb - ref).max())))
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) < 1e-5


def test_lora_needs_targets_for_unknown_families(tiny_bert: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from ragtune.engine.core.errors import ConfigError
    from ragtune.engine.embedder.train import apply_lora

    model = SentenceTransformer(str(tiny_bert), device="cpu")
    model[0].auto_model.config.model_type = "no-such-family"
    with pytest.raises(ConfigError, match="lora_target_modules"):
        apply_lora(model, EmbedderConfig(lora=True))
