"""Peak resident memory of the quickstart, per stage: `ragtune run examples/quickstart.toml` in a temp copy.

Runs the CLI in a child process and samples the resident memory of it and its children
(psutil, every 0.1 s), attributing each sample to the stage events.jsonl says is running.
Prints each stage's peak, the run's peak as the kernel counted it (getrusage of the
child, what `/usr/bin/time -v` reports as "Maximum resident set size"), and the ratio to
the 2.5 GiB target (issue 21).

    python bench/bench_memory.py [--stages ingest,generate,prepare,train] [--set KEY=VALUE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
TARGET_GIB = 2.5
GIB = 1024**3


def tree_rss(proc) -> int:
    import psutil

    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def current_stage(events: Path, offset: int, stage: str) -> tuple[int, str]:
    """The stage the newest stage_started event names, reading only what was appended."""
    if not events.exists():
        return offset, stage
    with events.open("rb") as f:
        f.seek(offset)
        chunk = f.read()
    end = chunk.rfind(b"\n") + 1
    for line in chunk[:end].splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("kind") == "stage_started":
            stage = event.get("stage", stage)
    return offset + end, stage


def main() -> int:
    import psutil

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", default="", help="only these stages (default: all)")
    parser.add_argument("--set", action="append", default=[], help="config override KEY=VALUE")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="ragtune-memory-"))
    for name in ("quickstart.toml", "handbook", "handbook_eval"):
        src = EXAMPLES / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, root / name)
    events = root / "runs" / "quickstart" / "events.jsonl"
    cmd = [sys.executable, "-m", "ragtune.engine", "run", str(root / "quickstart.toml"), "--quiet"]
    if args.stages:
        cmd += ["--stages", args.stages]
    for item in args.set:
        cmd += ["--set", item]
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    t0 = time.monotonic()
    child = subprocess.Popen(cmd, env=env, cwd=root)
    proc = psutil.Process(child.pid)
    peaks: dict[str, int] = {}
    offset, stage = 0, "start"
    while child.poll() is None:
        offset, stage = current_stage(events, offset, stage)
        try:
            rss = tree_rss(proc)
        except psutil.Error:
            break
        peaks[stage] = max(peaks.get(stage, 0), rss)
        time.sleep(0.1)
    code = child.wait()
    seconds = time.monotonic() - t0
    kernel_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    print(f"ragtune run {' '.join(cmd[5:])}: exit {code}, {seconds:.0f}s")
    print("| stage | peak resident memory (sampled) |")
    print("|---|---|")
    for name, peak in peaks.items():
        print(f"| {name} | {peak / GIB:.2f} GiB |")
    print(
        f"peak resident memory (getrusage, as /usr/bin/time -v): {kernel_peak / GIB:.2f} GiB, "
        f"ratio to target {kernel_peak / GIB / TARGET_GIB:.2f} (target <= {TARGET_GIB} GiB)"
    )
    shutil.rmtree(root, ignore_errors=True)
    return 0 if code == 0 and kernel_peak <= TARGET_GIB * GIB else 1


if __name__ == "__main__":
    raise SystemExit(main())
