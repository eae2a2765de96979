"""Cost curve: time and peak RSS of each data stage at 1k, 10k and 100k chunks, with growth exponents.

Usage: python bench/scale.py [--sizes 1000,10000,100000] [--stages ingest,chunking,...]
                             [--workdir DIR] [--rss-limit-gib 5] [--json OUT]

Each stage runs in a fresh subprocess so its peak RSS (``ru_maxrss``) is its own; the parent
also samples the child's RSS and kills it above ``--rss-limit-gib`` so a stage that would blow
up memory is reported instead of taking the shared machine down. The corpus is synthetic
Markdown (Zipf-distributed pseudo-words, one heading per section), chunked with the real
all-MiniLM-L6-v2 tokenizer. Embedding stages (mining, evaluation) use a tiny random BERT
(2 layers, hidden 64) built here: MiniLM would spend hours encoding 100k chunks on a CPU, and
what is measured is the stages' own scaling (batching, search, bookkeeping), not the encoder.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

STAGES = ("ingest", "index", "chunking", "generate", "prepare", "mining", "evaluate")
SIZES = (1_000, 10_000, 100_000)
SECTIONS_PER_FILE = 10
# Calibrated on this generator: a section of 5-7 pseudo-word sentences makes ~2.5 chunks of 128 tokens.
CHUNKS_PER_SECTION = 2.5
TARGET_EXPONENT = 1.15
TARGET_RSS_GIB = 4.0


# ------------------------------------------------------------------ synthetic corpus


def _vocabulary(n: int = 20_000, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    syllables = [c + v for c in "bcdfghklmnprstvz" for v in "aeiou"] + ["ar", "en", "ol", "is"]
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))))
    return sorted(words)


VOCAB = _vocabulary()
# Zipf weights: a few words are everywhere, most are rare, as in real text.
CUM_WEIGHTS = list(itertools.accumulate(1.0 / (i + 1) for i in range(len(VOCAB))))


def _sentence(rng: random.Random) -> str:
    words = rng.choices(VOCAB, cum_weights=CUM_WEIGHTS, k=rng.randint(8, 18))
    return " ".join(words).capitalize() + "."


def document_text(index: int) -> str:
    rng = random.Random(index)
    parts = [f"# Handbook {index}"]
    for s in range(SECTIONS_PER_FILE):
        title = " ".join(rng.choices(VOCAB[:2000], k=3)).title()
        body = " ".join(_sentence(rng) for _ in range(rng.randint(5, 7)))
        parts.append(f"## {title} {index}-{s}\n\n{body}")
    return "\n\n".join(parts) + "\n"


def files_for(chunks: int) -> int:
    return max(1, round(chunks / (SECTIONS_PER_FILE * CHUNKS_PER_SECTION)))


def write_corpus(folder: Path, n_files: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / ".complete"
    if marker.exists() and marker.read_text() == str(n_files):
        return
    for i in range(n_files):
        (folder / f"doc{i:06d}.md").write_text(document_text(i), encoding="utf-8")
    marker.write_text(str(n_files))


def tiny_model(folder: Path) -> Path:
    """A 2-layer random BERT with MiniLM's tokenizer, saved as a sentence-transformers folder."""
    out = folder / "st"
    if (out / "modules.json").exists():
        return out
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import AutoModel, AutoTokenizer, BertConfig

    from ragtune.engine.core.models import resolve_model

    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=512,
    )
    hf = folder / "hf"
    AutoModel.from_config(config).save_pretrained(hf)
    tok = resolve_model("sentence-transformers/all-MiniLM-L6-v2")
    AutoTokenizer.from_pretrained(tok).save_pretrained(hf)
    word = Transformer(str(hf), max_seq_length=128)
    pooling = Pooling(word.get_embedding_dimension(), pooling_mode="mean")
    SentenceTransformer(modules=[word, pooling], device="cpu").save(str(out))
    return out


# ------------------------------------------------------------------ one stage (child side)


def run_config(root: Path, n_files: int) -> Any:
    from ragtune.engine.config import RunConfig

    cfg = RunConfig.from_dict(
        {
            "run": {"name": "scale", "workspace": str(root / "ws")},
            "sources": {"paths": [str(root / "docs")]},
            "chunking": {
                "tokenizer": "sentence-transformers/all-MiniLM-L6-v2",
                "max_tokens": 128,
                "overlap_tokens": 16,
                "min_tokens": 16,
            },
            "embedder": {"base_model": str(root.parent / "model" / "st")},
        }
    )
    cfg.base_dir = root
    return cfg


def stage_ingest(root: Path, n_files: int) -> dict[str, Any]:
    from ragtune.engine.core.events import Emitter
    from ragtune.engine.core.workspace import Workspace
    from ragtune.engine.ingest import run_ingest

    cfg = run_config(root, n_files)
    ws = Workspace.create(root / "ws")
    ws.chunks_path.unlink(missing_ok=True)
    t0 = time.perf_counter()
    summary = run_ingest(cfg, ws, Emitter())
    return {"seconds": time.perf_counter() - t0, "items": summary["chunks"]}


def stage_index(root: Path, n_files: int) -> dict[str, Any]:
    """The BM25 index over the chunks (bm25s, streamed from chunks.parquet), saved."""
    from ragtune.engine.core.events import Emitter
    from ragtune.engine.core.workspace import Workspace
    from ragtune.engine.retrieval.stage import run_index

    cfg = run_config(root, n_files)
    ws = Workspace.create(root / "ws")
    t0 = time.perf_counter()
    summary = run_index(cfg, ws, Emitter())
    return {"seconds": time.perf_counter() - t0, "items": summary["documents"]}


def stage_chunking(root: Path, n_files: int) -> dict[str, Any]:
    """The chunker alone on documents streamed from memory: no file reading, no parquet."""
    from ragtune.engine.core.records import Document
    from ragtune.engine.ingest import make_chunker
    from ragtune.engine.ingest.chunking import ChunkStats, chunk_documents

    cfg = run_config(root, n_files)
    chunker = make_chunker(cfg)
    docs = (
        Document(doc_id=f"doc{i}", text=document_text(i), source=f"doc{i}.md")
        for i in range(n_files)
    )
    stats = ChunkStats()
    t0 = time.perf_counter()
    count = sum(1 for _ in chunk_documents(docs, chunker, stats))
    return {"seconds": time.perf_counter() - t0, "items": count}


def stage_generate(root: Path, n_files: int) -> dict[str, Any]:
    from ragtune.engine.config.generation import LlmFreeConfig
    from ragtune.engine.core.events import Emitter
    from ragtune.engine.core.records import read_chunks
    from ragtune.engine.core.workspace import Workspace
    from ragtune.engine.generate.llm_free import LlmFreeGenerator

    ws = Workspace.create(root / "ws")
    ws.generated_path.unlink(missing_ok=True)
    t0 = time.perf_counter()
    chunks = read_chunks(ws.chunks_path)
    summary = LlmFreeGenerator(LlmFreeConfig()).generate(chunks, ws, Emitter())
    (ws.state_dir / "generate_keys.txt").write_text("\n".join(summary.keys))
    return {"seconds": time.perf_counter() - t0, "items": summary.rows}


def stage_prepare(root: Path, n_files: int) -> dict[str, Any]:
    import shutil

    from ragtune.engine.core.events import Emitter
    from ragtune.engine.core.records import read_chunks
    from ragtune.engine.core.workspace import Workspace
    from ragtune.engine.data.prepare import run_prepare
    from ragtune.engine.generate.rows import read_rows

    cfg = run_config(root, n_files)
    ws = Workspace.create(root / "ws")
    shutil.rmtree(ws.dataset_dir, ignore_errors=True)
    t0 = time.perf_counter()
    keys = (ws.state_dir / "generate_keys.txt").read_text().split("\n")
    rows = read_rows(ws.generated_path, keys)
    chunks = read_chunks(ws.chunks_path)
    summary = run_prepare(cfg.data, ws, rows, chunks, Emitter())
    return {"seconds": time.perf_counter() - t0, "items": summary.get("train_pairs", len(rows))}


def stage_mining(root: Path, n_files: int) -> dict[str, Any]:
    """Hard negatives for every training query over the whole pool, as the reranker stage mines."""
    from ragtune.engine.config.reranker import RerankerConfig
    from ragtune.engine.core.models import load_embedder
    from ragtune.engine.core.workspace import Workspace
    from ragtune.engine.data.mining import build_groups, mine
    from ragtune.engine.data.prepare import load_prepared
    from ragtune.engine.reranker.negatives import mining_window

    ws = Workspace.create(root / "ws")
    model = load_embedder(str(root.parent / "model" / "st"), device="cpu")
    t0 = time.perf_counter()
    prepared = load_prepared(ws)
    excluded = set(prepared.eval_chunks)
    pool = {cid: text for cid, text in prepared.corpus.items() if cid not in excluded}
    groups = build_groups(prepared.train)
    counts = mine(groups, pool, model, mining_window(RerankerConfig()), batch_size=128)
    return {
        "seconds": time.perf_counter() - t0,
        "items": len(groups),
        "corpus": len(pool),
        "mined": counts["mined"],
    }


def stage_evaluate(root: Path, n_files: int) -> dict[str, Any]:
    """Held-out queries (capped at data.max_eval_queries) against every chunk, at 3 sizes."""
    from ragtune.engine.core.models import load_embedder
    from ragtune.engine.core.workspace import Workspace
    from ragtune.engine.data.prepare import load_prepared
    from ragtune.engine.evaluate.ir import evaluate_retrieval

    ws = Workspace.create(root / "ws")
    model = load_embedder(str(root.parent / "model" / "st"), device="cpu")
    t0 = time.perf_counter()
    data = load_prepared(ws).ir_data()
    metrics = evaluate_retrieval(model, data, [64, 32, 16], batch_size=128)
    return {
        "seconds": time.perf_counter() - t0,
        "items": len(data.queries),
        "corpus": len(data.corpus),
        "ndcg@10": round(metrics.get("dim_64_cosine_ndcg@10", 0.0), 4),
    }


def child(stage: str, root: Path, n_files: int) -> None:
    import torch

    torch.set_num_threads(1)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = globals()[f"stage_{stage}"](root, n_files)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["import_rss_mb"] = base / 1024
    print("RESULT " + json.dumps(result), flush=True)


# ------------------------------------------------------------------ orchestration (parent side)


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0.0


def run_child(stage: str, root: Path, n_files: int, rss_limit_mb: float) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", stage, "--root", str(root), "--files", str(n_files)]
    log_path = root / f"{stage}.log"
    t0 = time.perf_counter()
    # Output goes to a file: a pipe nobody reads while polling fills up and blocks the child.
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)
        peak = 0.0
        while proc.poll() is None:
            peak = max(peak, _rss_mb(proc.pid))
            if peak > rss_limit_mb:
                proc.kill()
                proc.wait()
                return {"error": f"killed above {rss_limit_mb / 1024:.1f} GiB", "peak_rss_mb": peak}
            time.sleep(0.1)
    out = log_path.read_text(errors="replace").splitlines()
    lines = [ln for ln in out if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        return {"error": (out or ["no output"])[-1][:200], "peak_rss_mb": peak}
    result = json.loads(lines[-1][len("RESULT ") :])
    result["process_seconds"] = time.perf_counter() - t0
    return result


def exponent(t1: float, t2: float, n1: float, n2: float) -> float | None:
    if min(t1, t2, n1, n2) <= 0 or n1 == n2:
        return None
    return math.log(t2 / t1) / math.log(n2 / n1)


def table(results: dict[str, dict[int, dict[str, Any]]], sizes: list[int]) -> str:
    head = "| stage | " + " | ".join(f"{n:,} chunks: s / peak MiB" for n in sizes)
    pairs = list(itertools.pairwise(sizes))
    head += "".join(f" | exp {a // 1000}k→{b // 1000}k" for a, b in pairs) + " |"
    sep = "|" + "---|" * (1 + len(sizes) + len(pairs))
    rows = [head, sep]
    for stage, by_size in results.items():
        cells = []
        for n in sizes:
            r = by_size.get(n, {})
            if "error" in r:
                cells.append(f"**{r['error']}**")
            elif r:
                cells.append(f"{r['seconds']:.1f} / {r['peak_rss_mb']:.0f}")
            else:
                cells.append("–")
        for a, b in pairs:
            ra, rb = by_size.get(a, {}), by_size.get(b, {})
            e = None
            if "seconds" in ra and "seconds" in rb:
                e = exponent(ra["seconds"], rb["seconds"], _n(ra, a), _n(rb, b))
            cells.append(f"{e:.2f}" if e is not None else "–")
        rows.append(f"| {stage} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _n(result: dict[str, Any], size: int) -> float:
    """Growth is measured against the corpus each stage actually saw, not the nominal size."""
    return float(result.get("corpus") or result.get("chunks") or size)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default=",".join(map(str, SIZES)))
    p.add_argument("--stages", default=",".join(STAGES))
    p.add_argument("--workdir", default=str(Path("/tmp") / "ragtune-scale"))
    p.add_argument("--rss-limit-gib", type=float, default=5.0)
    p.add_argument("--json", default="", help="also write the raw results here")
    p.add_argument("--child", default="", help=argparse.SUPPRESS)
    p.add_argument("--root", default="", help=argparse.SUPPRESS)
    p.add_argument("--files", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.child, Path(args.root), args.files)
        return 0

    work = Path(args.workdir)
    sizes = [int(s) for s in args.sizes.split(",")]
    stages = [s for s in args.stages.split(",") if s]
    unknown = set(stages) - set(STAGES)
    if unknown:
        p.error(f"unknown stages {sorted(unknown)}; choose from {', '.join(STAGES)}")
    tiny_model(work / "model")
    results: dict[str, dict[int, dict[str, Any]]] = {s: {} for s in stages}
    for n in sizes:
        root = work / str(n)
        n_files = files_for(n)
        write_corpus(root / "docs", n_files)
        chunks = 0
        for stage in stages:
            r = run_child(stage, root, n_files, args.rss_limit_gib * 1024)
            if stage == "ingest" and "items" in r:
                chunks = r["items"]
            if chunks and "corpus" not in r:
                r["chunks"] = chunks
            results[stage][n] = r
            shown = {k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()}
            print(f"{n:>7} {stage:<9} {json.dumps(shown)}", file=sys.stderr, flush=True)
    print(table(results, sizes))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
