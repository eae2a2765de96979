"""Base <-> fine-tuned interpolation: both ends are the two models, the middle their average,
through sentence-transformers' mergekit merge and through the plain fallback alike."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from ragtune.engine.deploy.merge import interpolate, merge_method, strip_rotation


def _pair(tiny_bert: Path):
    from sentence_transformers import SentenceTransformer

    from ragtune.engine.core.models import attention_dropout_kwargs, load_embedder

    base = SentenceTransformer(str(tiny_bert), device="cpu")
    # trained as ragtune trains by default: attention dropout 0, recorded in its config
    tuned = load_embedder(
        str(tiny_bert), device="cpu", **attention_dropout_kwargs(str(tiny_bert), 0.0)
    )
    torch.manual_seed(3)
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(0.05 * torch.randn_like(p))
    tuned.prompts = {"query": "query: "}
    return base, tuned


def _floats(model) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if v.dtype.is_floating_point}


@pytest.mark.parametrize("mergekit", [True, False])
def test_interpolation_ends_and_middle(
    tiny_bert: Path, mergekit: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if mergekit:
        pytest.importorskip("mergekit")
    else:
        real = importlib.util.find_spec
        monkeypatch.setattr(
            importlib.util,
            "find_spec",
            lambda name, *a: None if name == "mergekit" else real(name, *a),
        )
    assert merge_method() == ("mergekit linear" if mergekit else "state-dict interpolation")
    base, tuned = _pair(tiny_bert)
    b, t = _floats(base), _floats(tuned)
    for weight in (0.0, 0.3, 1.0):
        merged = _floats(interpolate(tuned, base, weight))
        assert merged.keys() == t.keys()
        for key, value in merged.items():
            assert torch.allclose(value, weight * t[key] + (1 - weight) * b[key], atol=1e-6), key
    out = interpolate(tuned, base, 0.5)
    assert out.prompts == {"query": "query: "}
    # The inputs are left as they were, the base's dropout settings included.
    assert all(torch.equal(v, t[k]) for k, v in _floats(tuned).items())
    assert base[0].auto_model.config.attention_probs_dropout_prob == 0.1
    assert tuned[0].auto_model.config.attention_probs_dropout_prob == 0.0


def test_strip_rotation_removes_only_the_rotation(tiny_bert: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from ragtune.engine.embedder.rotation import append_rotation, fit_rotation

    model = SentenceTransformer(str(tiny_bert), device="cpu")
    plain = len(model)
    assert strip_rotation(model) is model
    append_rotation(
        model, fit_rotation(model, [f"text {i} about topic {i % 4}" for i in range(20)])
    )
    assert len(strip_rotation(model)) == plain
