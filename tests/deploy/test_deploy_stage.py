"""The deploy stage on a tiny workspace: precision x size table, ONNX rows, suggestion, interpolation, export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ragtune.engine.core.events import StageFinished
from ragtune.engine.deploy.results import read_deploy

pytest.importorskip("onnxruntime")


@pytest.mark.slow
def test_deploy_table_interpolation_and_export(deploy_run) -> None:
    ws, seen = deploy_run
    finished = [e.stage for e in seen if isinstance(e, StageFinished)]
    assert finished.index("evaluate") < finished.index("deploy") < finished.index("export")

    metrics = json.loads(ws.metrics_path.read_text())
    evaluated = metrics["embedder"]["held-out"]["tuned"]
    results = read_deploy(ws.metrics_path)
    held = results.suite("held-out")
    assert held is not None and held.queries == metrics["embedder"]["held-out"]["queries"]
    dims = [64, 32, 16]
    assert len(held.rows) == len(dims) * 3 + 2 * len(dims)
    for dim in dims:
        f32 = held.row("torch", dim, "float32")
        # Same model, same queries, same scoring as the evaluate stage.
        assert f32.ndcg.mean == pytest.approx(evaluated[f"dim_{dim}_cosine_ndcg@10"], abs=1e-6)
        assert f32.bytes_per_chunk == 4 * dim
        assert held.row("torch", dim, "int8").bytes_per_chunk == dim
        assert held.row("torch", dim, "binary").bytes_per_chunk == dim // 8
        assert held.row("onnx", dim, "float32").ndcg.mean == pytest.approx(f32.ndcg.mean, abs=0.02)
        assert held.row("onnx-int8", dim, "float32") is not None
        assert held.row("torch", dim, "float32").encode_ratio <= 1.0 + 1e-9
        assert held.baseline[dim] == pytest.approx(
            metrics["embedder"]["held-out"]["base_rotated"][f"dim_{dim}_cosine_ndcg@10"]
        )
    for row in held.rows:
        assert row.ndcg.low <= row.ndcg.mean <= row.ndcg.high
        assert row.vs_best.low <= row.vs_best.mean <= row.vs_best.high
        assert row.encode_ratio > 0

    # The suggestion: no smaller row is within the interval of the best.
    sug = results.suggestion
    assert sug is not None and sug.suite == "held-out"
    picked = held.row(sug.encoder, sug.dim, sug.precision)
    assert picked.within_best
    assert all(r.bytes_per_chunk >= picked.bytes_per_chunk for r in held.rows if r.within_best)

    interp = results.interpolation
    assert interp is not None and interp.dim == 16
    assert [t.weight for t in interp.tried] == [0.0, 0.5, 1.0]
    assert interp.chosen == max(interp.tried, key=lambda t: (t.ndcg, t.weight)).weight
    assert interp.select_queries + interp.report_queries == held.queries
    gain = interp.gain("held-out", "tuned")
    assert gain is not None and gain.low <= gain.mean <= gain.high
    assert (interp.saved != "") == (interp.chosen < 1.0)
    report = ws.report_path.read_text()
    assert "Deploy table: held-out queries" in report and "interpolation" in report
    assert "Deploying it" in (ws.embedder_dir / "README.md").read_text()

    # ragtune export --format writes both files at the suggested size and states the check.
    env = {"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ragtune.engine",
            "export",
            str(ws.root),
            "--format",
            "onnx,onnx-int8",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)["deploy"]
    assert out["dim"] == sug.dim
    checks = {c["format"]: c for c in out["checks"]}
    assert checks["onnx"]["max_abs_diff"] < 1e-4
    card = (Path(out["folder"]) / "README.md").read_text()
    assert "max abs difference" in card and "onnx-int8" in card


def test_suggestion_names_the_full_size_it_saves_against() -> None:
    from ragtune.engine.deploy.stage import _suggest

    def row(dim: int, precision: str, size: int, mean: float, high: float) -> dict:
        return {
            "encoder": "torch",
            "dim": dim,
            "precision": precision,
            "ndcg@10": {"mean": mean, "low": mean - 0.05, "high": mean + 0.05},
            "vs_best": {"mean": 0.0 if high == 0 else -0.01, "low": -0.02, "high": high},
            "bytes_per_chunk": size,
            "encode_ratio": 1.0,
        }

    full, small = row(384, "float32", 1536, 0.80, 0.01), row(64, "int8", 64, 0.81, 0.0)
    picked = _suggest({"rows": [full, small], "queries": 30}, "benchmark")
    assert (picked["dim"], picked["precision"]) == (64, "int8")
    assert picked["reason"] == (
        "the best row on the 30 benchmark queries (0.8100) is also the smallest within its "
        "interval: 64 bytes per passage instead of 1536 (full size, float32)"
    )
    best, cheap = row(384, "float32", 1536, 0.82, 0.0), row(128, "int8", 128, 0.80, 0.01)
    picked = _suggest({"rows": [best, cheap], "queries": 30}, "benchmark")
    assert picked["dim"] == 128
    assert picked["reason"].startswith("the smallest index whose nDCG@10 the 30 benchmark")
    assert picked["reason"].endswith("128 bytes per passage instead of 1536 (full size, float32)")
