"""Work one process does for every rank, done before the ranks start, as a checked output folder.

Mining hard negatives, pseudo-labelling and the reranker's negatives once ran on rank 0 inside
the torchrun job while the other ranks waited in a collective, which NCCL ends after its
timeout on any corpus whose mining takes longer. The launcher now runs them in its own process
first (`run_prework`); each rank reads the folder (`read_prework`) and refuses one made for
other inputs. A job started by hand (srun, torchrun) runs the same step first:

    python -m ragtune.engine.training.prework --config runs/x/config.toml --which embedder
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragtune.engine.core.dist import world_size
from ragtune.engine.core.errors import RagtuneError
from ragtune.engine.core.events import Emitter
from ragtune.engine.core.gpu import named_oom

if TYPE_CHECKING:
    from ragtune.engine.config import RunConfig
    from ragtune.engine.core.workspace import Workspace
    from ragtune.engine.data.prepare import Prepared
    from ragtune.engine.reranker.negatives import NegativesResult

STAGE_OF = {"embedder": "train", "reranker": "rerank"}
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class PreworkOutput:
    """A finished prework folder: what it was made for, and the summary the stage reports."""

    which: str
    folder: Path
    fingerprint: str
    summary: dict[str, Any]


def prework_dir(ws: Workspace, which: str) -> Path:
    return ws.state_dir / f"prework_{which}"


def stage_fingerprint(cfg: RunConfig, ws: Workspace, which: str) -> str:
    # Keyed like the stage's checkpoints: by the fingerprint only the stage list computes.
    from ragtune.engine.stages import plan

    return plan(cfg, ws).fingerprint(STAGE_OF[which])


def needs_prework(cfg: RunConfig, which: str) -> bool:
    """The embedder needs it only to mine negatives; the reranker always collects them."""
    return cfg.embedder.hard_negatives >= 1 if which == "embedder" else True


def _files_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST):
        h.update(str(path.relative_to(folder)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _free_accelerator() -> None:
    """The ranks start next, one on each GPU: nothing of ours may stay on one of them."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _encoding(device: str, precision: str) -> contextlib.AbstractContextManager[Any]:
    """Mining with the fp32 weights about to be trained still encodes in the training dtype."""
    import torch

    from ragtune.engine.core.models import inference_dtype

    dtype = inference_dtype(precision, device)
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=dtype)


# -- the work itself


def _embedder_rows(cfg: RunConfig, ws: Workspace, events: Emitter) -> tuple[Any, dict[str, Any]]:
    from ragtune.engine.core.models import for_inference, load_embedder, pick_device
    from ragtune.engine.data.prepare import load_prepared
    from ragtune.engine.embedder.train import training_rows

    ecfg = cfg.embedder
    prepared = load_prepared(ws)
    device = pick_device(ecfg.device)
    model = load_embedder(ecfg.base_model, device=device, trust_remote_code=ecfg.trust_remote_code)
    if ecfg.max_seq_length:
        model.max_seq_length = ecfg.max_seq_length
    for_inference(model, ecfg.precision, device)
    with named_oom("train", cfg, phase="mining hard negatives"):
        return training_rows(cfg, prepared, model, events)


def _reranker_negatives(cfg: RunConfig, ws: Workspace, events: Emitter) -> NegativesResult | None:
    from ragtune.engine.core.models import for_inference, load_embedder, pick_device
    from ragtune.engine.data.prepare import load_prepared
    from ragtune.engine.embedder.train import attach_prompts
    from ragtune.engine.reranker.train import (
        embedder_source,
        mine_reranker_negatives,
        untrainable_reason,
    )

    rc = cfg.reranker
    prepared = load_prepared(ws)
    if untrainable_reason(rc, len(prepared.train)):
        return None
    device = pick_device(rc.device)
    embedder = attach_prompts(
        load_embedder(
            embedder_source(cfg, ws),
            device=device,
            trust_remote_code=cfg.embedder.trust_remote_code,
        ),
        cfg.embedder,
    )
    for_inference(embedder, rc.precision, device)
    with named_oom("rerank", cfg, phase="mining reranker negatives"):
        return mine_reranker_negatives(cfg, ws, prepared, embedder, device, events)


def run_prework(cfg: RunConfig, ws: Workspace, events: Emitter, which: str) -> PreworkOutput | None:
    """Do ``which``'s shared work in this process and write it for the ranks; None when the
    stage has none. A folder already made for the same inputs is reused."""
    if not needs_prework(cfg, which):
        return None
    fingerprint = stage_fingerprint(cfg, ws, which)
    with contextlib.suppress(RagtuneError):
        done = read_prework(cfg, ws, which, fingerprint=fingerprint)
        events.info(f"{which}: reusing the negatives mined before the ranks started")
        return done
    folder = prework_dir(ws, which)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    events.info(f"{which}: mining once, before the training processes start")
    try:
        if which == "embedder":
            rows, summary = _embedder_rows(cfg, ws, events)
            rows.save_to_disk(str(tmp / "rows"))
            count = len(rows)
        else:
            negatives = _reranker_negatives(cfg, ws, events)
            if negatives is None:
                shutil.rmtree(tmp)
                return None
            (tmp / "negatives.json").write_text(json.dumps(asdict(negatives)), encoding="utf-8")
            summary = {"negatives": negatives.counts}
            count = len(negatives.groups)
    finally:
        _free_accelerator()
    manifest = {
        "which": which,
        "fingerprint": fingerprint,
        "rows": count,
        "digest": _files_digest(tmp),
        "summary": summary,
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.replace(folder)
    return PreworkOutput(which, folder, fingerprint, manifest["summary"])


def read_prework(
    cfg: RunConfig, ws: Workspace, which: str, *, fingerprint: str | None = None
) -> PreworkOutput:
    """The folder ``run_prework`` wrote, checked to be complete, intact and made for these
    inputs; else a RagtuneError that says how to make it."""
    folder = prework_dir(ws, which)
    config = ws.config_path
    hint = (
        "ragtune's launcher makes it before starting the ranks; for a job started by hand run "
        f"`python -m ragtune.engine.training.prework --config {config} --which {which}` first, "
        "on a filesystem every node shares"
    )
    manifest_path = folder / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        raise RagtuneError(
            f"the {which}'s mined negatives are missing", where=str(folder), hint=hint
        ) from None
    expected = fingerprint or stage_fingerprint(cfg, ws, which)
    if manifest.get("which") != which or manifest.get("fingerprint") != expected:
        raise RagtuneError(
            f"the {which}'s mined negatives were made for other settings or data",
            where=str(folder),
            hint=hint,
        )
    if manifest.get("digest") != _files_digest(folder):
        raise RagtuneError(
            f"the {which}'s mined negatives changed after they were written",
            where=str(folder),
            hint=hint,
        )
    return PreworkOutput(which, folder, expected, dict(manifest.get("summary") or {}))


def _load_negatives(folder: Path) -> NegativesResult:
    from ragtune.engine.data.mining import QueryGroup
    from ragtune.engine.reranker.negatives import NegativesResult

    data = json.loads((folder / "negatives.json").read_text(encoding="utf-8"))
    groups = [
        QueryGroup(
            query=g["query"],
            positive=g["positive"],
            chunk_id=g["chunk_id"],
            negatives=[tuple(n) for n in g["negatives"]],
        )
        for g in data["groups"]
    ]
    return NegativesResult(
        groups=groups,
        counts=data["counts"],
        recipe=data["recipe"],
        extra_negatives=[tuple(p) for p in data["extra_negatives"]],
    )


# -- what the stages call


def _ready(cfg: RunConfig, ws: Workspace, which: str) -> PreworkOutput | None:
    """The prework when there is a current one; under torchrun it must be there (a rank
    never mines while the others wait), alone in this process it is reused if it is."""
    try:
        return read_prework(cfg, ws, which)
    except RagtuneError:
        if world_size() > 1:
            raise
        return None


def embedder_rows(
    cfg: RunConfig, ws: Workspace, prepared: Prepared, model: Any, events: Emitter
) -> tuple[Any, dict[str, Any]]:
    """The embedder's training rows: from the prework when the launcher made one, else mined
    here (alone, in this process)."""
    from ragtune.engine.embedder.train import training_rows

    done = _ready(cfg, ws, "embedder") if needs_prework(cfg, "embedder") else None
    if done is not None:
        from datasets import load_from_disk

        return load_from_disk(str(done.folder / "rows")), done.summary
    device = str(model.device)
    with (
        named_oom("train", cfg, phase="mining hard negatives"),
        _encoding(device, cfg.embedder.precision),
    ):
        return training_rows(cfg, prepared, model, events)


def reranker_negatives(
    cfg: RunConfig,
    ws: Workspace,
    prepared: Prepared,
    embedder: Any,
    device: str,
    events: Emitter,
) -> NegativesResult:
    """The reranker's negatives: from the prework when the launcher made one, else mined here."""
    done = _ready(cfg, ws, "reranker")
    if done is not None:
        return _load_negatives(done.folder)
    from ragtune.engine.reranker.train import mine_reranker_negatives

    with (
        named_oom("rerank", cfg, phase="mining reranker negatives"),
        _encoding(device, cfg.reranker.precision),
    ):
        return mine_reranker_negatives(cfg, ws, prepared, embedder, device, events)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m ragtune.engine.training.prework", description=__doc__
    )
    p.add_argument("--config", required=True, help="config.toml, or a workspace folder")
    p.add_argument("--which", choices=tuple(STAGE_OF), default="embedder")
    args = p.parse_args(argv)
    from ragtune.engine.config import load_config
    from ragtune.engine.core.quiet import quiet_libraries
    from ragtune.engine.core.workspace import Workspace

    quiet_libraries()
    config = Path(args.config)
    try:
        cfg = load_config(config / "config.toml" if config.is_dir() else config)
        ws = Workspace.create(cfg.workspace_dir)
        done = run_prework(cfg, ws, Emitter(), args.which)
    except RagtuneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(done.folder if done else f"{args.which}: nothing to do before the ranks start")
    return 0


if __name__ == "__main__":
    sys.exit(main())
