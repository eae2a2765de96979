"""ONNX and int8 ONNX exports of a rotated model give the evaluated vectors, through sentence-transformers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ragtune.engine.export.onnx import (
    ONNX_FILE,
    MissingExtra,
    export_formats,
    load_exported,
    require,
)
from tests.generate.test_llm_free import TEXTS

pytest.importorskip("onnxruntime")

SAMPLE = [t for _, t in TEXTS] + [
    f"record {i} of shipment {i * 7} to dock {i % 5}" for i in range(30)
]


def _rotated(tiny_bert: Path):
    from sentence_transformers import SentenceTransformer

    from ragtune.engine.embedder.rotation import append_rotation, fit_rotation

    model = SentenceTransformer(str(tiny_bert), device="cpu")
    append_rotation(model, fit_rotation(model, SAMPLE))
    return model


def test_onnx_and_int8_match_the_rotated_truncated_torch_vectors(
    tmp_path: Path, tiny_bert: Path
) -> None:
    from ragtune.engine.core.search import truncate_normalize

    model = _rotated(tiny_bert)
    # What evaluation scores at size 16: the rotated vectors, first 16 coordinates, unit length.
    evaluated = truncate_normalize(model.encode(SAMPLE, convert_to_numpy=True), 16)
    checks = export_formats(model, tmp_path / "out", ["onnx", "onnx-int8"], dim=16, sample=SAMPLE)
    by_format = {c.format: c for c in checks}
    assert set(by_format) == {"onnx", "onnx-int8"}
    assert by_format["onnx"].max_abs_diff < 1e-4
    assert by_format["onnx-int8"].min_cosine > 0.9
    assert by_format["onnx-int8"].bytes < by_format["onnx"].bytes / 2

    for fmt, tolerance in (("onnx", 1e-4), ("onnx-int8", 0.2)):
        loaded = load_exported(tmp_path / "out", fmt)
        # Other lengths and batch sizes than the traced sample: the axes are dynamic.
        texts = [*SAMPLE[::-1], "a much longer text " * 40]
        got = loaded.encode(texts, batch_size=7, convert_to_numpy=True)
        want = truncate_normalize(model.encode(texts, convert_to_numpy=True), 16)
        assert got.shape == (len(texts), 16)
        assert np.abs(got - want).max() < tolerance
        assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-3)
    onnx = load_exported(tmp_path / "out", "onnx").encode(SAMPLE, convert_to_numpy=True)
    assert np.abs(onnx - evaluated).max() < 1e-4

    from sentence_transformers import SentenceTransformer

    # The torch folder beside the files is the same model with the size baked in.
    plain = SentenceTransformer(str(tmp_path / "out"), device="cpu")
    assert np.abs(plain.encode(SAMPLE) - evaluated).max() < 1e-5


def test_openvino_matches_torch(tmp_path: Path, tiny_bert: Path) -> None:
    pytest.importorskip("openvino")
    model = _rotated(tiny_bert)
    [check] = export_formats(model, tmp_path / "ov", ["openvino"], dim=32, sample=SAMPLE)
    assert check.max_abs_diff < 1e-4 and check.dim == 32
    got = load_exported(tmp_path / "ov", "openvino").encode(SAMPLE[:5], convert_to_numpy=True)
    assert got.shape == (5, 32)


def test_a_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a)
    )
    with pytest.raises(MissingExtra) as err:
        require("openvino")
    assert err.value.exit_code == 3
    assert "ragtune[openvino]" in str(err.value)
    assert ONNX_FILE.endswith(".onnx")
