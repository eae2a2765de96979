"""Deploy bench: the deploy table on medline, every ratio measured in one run.

For all-MiniLM-L6-v2 on medline (trained only on pseudo-queries from ``corpus.jsonl``; the
real queries judge): nDCG@10 with 95% paired-bootstrap intervals per Matryoshka size x
{float32, int8, binary} stored vectors and for torch vs ONNX vs int8 ONNX, index bytes per
passage, encode speed against torch float32, the suggested setting, and (with ``--train``)
the base <-> fine-tuned interpolation. Without ``--train`` the deployed model is the base
model with the corpus rotation (no training), which is what the table then describes.

    flock /work/heavy.lock python bench/bench_deploy.py [--train] [--set KEY=VALUE]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

from benchdata import beir_sources  # bench/, beside this script

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "bench-data"
if not DATA.is_dir():
    DATA = Path("/work/shared/bench-data")


def config(name: str, root: Path, train: bool, overrides: list[str]):
    from ragtune.engine.config import RunConfig, apply_override

    folder = DATA / name
    data = {
        "run": {"name": name, "workspace": str(root / name)},
        "sources": beir_sources(folder),
        "embedder": {"base_model": "sentence-transformers/all-MiniLM-L6-v2"},
        "reranker": {"enabled": False},
        "eval": {"benchmark": str(folder)},
        "deploy": {
            "backends": ["onnx", "onnx-int8"],
            "interpolate": train,
            "interpolation_weights": [0.0, 0.5, 1.0],
        },
    }
    for item in overrides:
        apply_override(data, item)
    return RunConfig.from_dict(data)


def base_with_rotation(cfg, ws) -> None:
    """The base model with the corpus rotation, saved where training would save its model."""
    from ragtune.engine.core.models import load_embedder
    from ragtune.engine.data.prepare import load_prepared
    from ragtune.engine.embedder.rotation import rotate_for_corpus
    from ragtune.engine.embedder.train import attach_prompts, column_prompts

    model = load_embedder(cfg.embedder.base_model, device="cpu")
    rotate_for_corpus(
        model,
        load_prepared(ws).corpus.values(),
        batch_size=cfg.eval.encode_batch("cpu"),
        document_prompt=column_prompts(model, cfg.embedder).get("positive"),
        seed=cfg.embedder.seed,
    )
    attach_prompts(model, cfg.embedder).save(str(ws.embedder_dir))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collection", default="medline")
    parser.add_argument("--train", action="store_true", help="fine-tune first (slow on CPU)")
    parser.add_argument("--set", action="append", default=[], help="config override KEY=VALUE")
    parser.add_argument("--workdir", default="", help="keep the workspace here")
    parser.add_argument("--out", default="", help="write the deploy results as JSON here")
    args = parser.parse_args()

    from ragtune.engine.api import run_pipeline
    from ragtune.engine.core.metrics_file import MetricsFile
    from ragtune.engine.core.workspace import Workspace
    from ragtune.engine.deploy.report import render_markdown
    from ragtune.engine.deploy.results import read_deploy

    root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="ragtune-deploy-"))
    cfg = config(args.collection, root, args.train, args.set)
    t0 = time.monotonic()
    if args.train:
        ws = run_pipeline(cfg, stages=["ingest", "generate", "prepare", "train", "evaluate"])
    else:
        ws = run_pipeline(cfg, stages=["ingest", "generate", "prepare"])
        base_with_rotation(cfg.for_workspace(ws.root), Workspace(ws.root))
        run_pipeline(cfg, stages=["evaluate"])
    t1 = time.monotonic()
    run_pipeline(cfg, stages=["deploy"])
    t2 = time.monotonic()
    results = read_deploy(ws.metrics_path)
    model = "fine-tuned" if args.train else "base + corpus rotation (no training)"
    print(f"\n{args.collection}, all-MiniLM-L6-v2, deployed model: {model}")
    print(f"up to evaluate: {t1 - t0:.0f}s; deploy stage: {t2 - t1:.0f}s")
    metrics = MetricsFile(ws.metrics_path)
    speeds = metrics.read()["deploy"]["texts_per_second"]
    print("passages/s: " + ", ".join(f"{k} {v:.1f}" for k, v in speeds.items()))
    print(render_markdown(results))
    if args.out:
        Path(args.out).write_text(metrics.text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
