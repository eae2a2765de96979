"""One real tiny workspace through the deploy stage (ONNX rows and interpolation on), shared
by the engine, export and wizard-widget tests of this folder."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def deploy_run(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path):
    pytest.importorskip("onnxruntime")
    from engine.api import run_pipeline
    from engine.core.events import Emitter
    from tests.test_pipeline import tiny_config

    cfg = tiny_config(tmp_path_factory.mktemp("deploy"), tiny_bert)
    cfg.deploy.backends = ["onnx", "onnx-int8"]
    cfg.deploy.interpolate = True
    cfg.deploy.interpolation_weights = [0.0, 0.5, 1.0]
    cfg.deploy.throughput_texts = 16
    seen: list = []
    ws = run_pipeline(cfg, events=Emitter(seen.append))
    return ws, seen
