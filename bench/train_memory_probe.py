"""Where the train stage's memory goes: resident memory at every trainer step of one workspace.

`bench_memory.py` gives each stage's peak; this shows what inside training makes it: the
imports, the model and rows before the first step, then RSS and the process's peak so far
(`ru_maxrss`) at each step's start and end. Run it on a workspace prepared up to `train`:

    ragtune run examples/quickstart.toml --stages ingest,index,generate,prepare
    python bench/train_memory_probe.py examples/runs/quickstart [embedder.KEY=VALUE ...]

e.g. `embedder.gradient_checkpointing=false`. The workspace's checkpoints are removed first, so
training starts from the base model; its saved model is overwritten.
"""

from __future__ import annotations

import os
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
GIB = 1024**3
T0 = time.monotonic()


def mark(what: str) -> None:
    import psutil

    rss = psutil.Process().memory_info().rss / GIB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB
    print(f"{time.monotonic() - T0:7.1f} s  {what:<24} rss {rss:5.2f} GiB  peak {peak:5.2f} GiB")


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    import sentence_transformers
    from transformers import TrainerCallback

    from ragtune.engine.config import load_config
    from ragtune.engine.core.events import Emitter
    from ragtune.engine.core.workspace import Workspace
    from ragtune.engine.embedder.train import train_embedder

    mark("imported")

    class Probe(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            mark(f"step {state.global_step + 1} begins")

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            mark(f"step {state.global_step} ends")

    trainer_init = sentence_transformers.SentenceTransformerTrainer.__init__

    def with_probe(self: Any, *args: Any, **kwargs: Any) -> None:
        mark("rows ready, trainer built")
        kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), Probe()]
        trainer_init(self, *args, **kwargs)

    sentence_transformers.SentenceTransformerTrainer.__init__ = with_probe
    ws = Workspace.create(Path(argv[0]))
    cfg = load_config(ws.config_path, argv[1:])
    shutil.rmtree(ws.checkpoints_dir, ignore_errors=True)
    train_embedder(cfg, ws, Emitter())
    mark("trained and saved")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
