"""The headless command line: run, init, eval, status, ask, generate, export, config.

stdout carries results (tables, JSON); stderr carries progress and diagnostics.
Exit codes come from ``engine.core.errors.EXIT_CODES`` only.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from engine.core.errors import EXIT_CODES, Cancelled, RagtuneError
from engine.core.quiet import quiet_libraries


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, no_color=bool(os.environ.get("NO_COLOR")) or None)


def _install_cancel(cancel: threading.Event) -> None:
    """First Ctrl-C asks the stage to stop at a safe point; a second one stops at once."""

    def handler(signum: int, frame: Any) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        print(
            "\nstopping after the current step (Ctrl-C again to stop now)…",
            file=sys.stderr,
            flush=True,
        )

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)


def _load(path: str, overrides: list[str] | None = None) -> Any:
    """A config file, or a workspace folder (its config.toml)."""
    from engine.config import load_config

    p = Path(path)
    if p.is_dir():
        p = p / "config.toml"
    return load_config(p, overrides)


def cmd_run(args: argparse.Namespace) -> int:
    from engine.api import run_pipeline
    from engine.core.events import Emitter
    from engine.render import RichRenderer

    cfg = _load(args.config, args.set)
    renderer = RichRenderer(_console(stderr=True), quiet=args.quiet)
    cancel = threading.Event()
    _install_cancel(cancel)
    stages = args.stages.split(",") if args.stages else None
    try:
        ws = run_pipeline(cfg, events=Emitter(renderer), cancel=cancel, stages=stages)
    finally:
        renderer.close()
    _print_results(ws, as_json=args.json)
    return 0


def _print_results(ws: Any, *, as_json: bool) -> None:
    from engine.render import metrics_table

    out = _console()
    if not ws.metrics_path.exists():
        out.print(f"workspace: {ws.root}")
        return
    metrics = json.loads(ws.metrics_path.read_text())
    if as_json:
        print(json.dumps(metrics, indent=2))
        return
    emb = metrics.get("embedder", {})
    for suite in ("benchmark", "held-out"):
        if suite in emb:
            rows = emb[suite]["rows"]
            out.print(metrics_table(rows, f"{suite} queries: base vs fine-tuned"))
    rr = ws.root / "report_reranker.md"
    if rr.exists():
        out.print(rr.read_text(encoding="utf-8"), soft_wrap=True, markup=False)
    out.print(f"report: {ws.report_path}\nmodels: {ws.models_dir}")


def cmd_init(args: argparse.Namespace) -> int:
    from engine.config import RunConfig

    target = Path(args.path)
    if target.exists() and not args.force:
        raise RagtuneError(
            "file exists", where=str(target), hint="pass --force to overwrite, or another path"
        )
    cfg = RunConfig()
    if args.sources:
        cfg.sources.paths = list(args.sources)
    if args.model:
        cfg.embedder.base_model = args.model
    cfg.save(target)
    print(f"wrote {target}; edit it, then: ragtune run {target}", file=sys.stderr)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from engine.core.models import derive_dims, load_embedder, pick_device
    from engine.embedder.train import embedding_dim
    from engine.evaluate.beir import load_beir
    from engine.evaluate.ir import evaluate_retrieval, metrics_by_dim

    data = load_beir(Path(args.data), qrels=args.qrels, queries=args.queries)
    model = load_embedder(args.model, device=pick_device(args.device))
    dims = (
        [int(d) for d in args.dims.split(",")] if args.dims else derive_dims(embedding_dim(model))
    )
    scores = evaluate_retrieval(
        model,
        data,
        dims,
        batch_size=args.batch_size,
        query_prompt=args.query_prompt,
        document_prompt=args.document_prompt,
    )
    if args.json:
        print(json.dumps(scores, indent=2))
        return 0
    from rich.table import Table

    table = Table(title=f"{args.model} on {args.data} ({len(data.queries)} queries)")
    metrics = ("ndcg@10", "mrr@10", "map@100", "accuracy@1", "recall@10", "recall@100")
    table.add_column("dim", justify="right")
    for m in metrics:
        table.add_column(m, justify="right")
    for dim, values in metrics_by_dim(scores).items():
        table.add_row(str(dim), *(f"{values.get(m, float('nan')):.4f}" for m in metrics))
    _console().print(table)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from engine.core.workspace import Workspace

    p = Path(args.workspace)
    cfg = None
    if p.is_file():
        cfg = _load(str(p))
        p = cfg.workspace_dir
    ws = Workspace(p.resolve())
    if not ws.root.exists():
        raise RagtuneError("no such workspace", where=str(p), hint="check the path")
    status = ws.status(cfg.for_workspace(ws.root) if cfg is not None else None)
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        for stage, state in status.items():
            print(f"{stage:<9} {state}")
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from engine.core.workspace import Workspace
    from engine.serve.ask import ask

    p = Path(args.workspace)
    if p.is_file():
        p = _load(str(p)).workspace_dir
    result = ask(
        Workspace(p.resolve()),
        args.question,
        top_k=args.top_k,
        dim=args.dim,
        rerank=not args.no_rerank,
        compare=args.compare,
        llm_answer=args.answer,
    )
    if args.json:
        from dataclasses import asdict, is_dataclass

        print(json.dumps(asdict(result) if is_dataclass(result) else result, indent=2, default=str))
        return 0
    from engine.serve.ask import render_result

    _console().print(render_result(result))
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    """Sample rows for review before paying for the full run."""
    from engine.api import sample_generation

    cfg = _load(args.config, args.set)
    rows, estimate = sample_generation(cfg, k=args.sample)
    if args.json:
        from dataclasses import asdict

        print(json.dumps([asdict(r) for r in rows], indent=2, ensure_ascii=False))
        return 0
    from rich.table import Table

    table = Table(title=f"{len(rows)} sample rows", show_lines=True)
    for col in ("source", "kind", "question", "response", "context"):
        table.add_column(col, overflow="fold", max_width=60 if col == "context" else 40)
    for r in rows:
        table.add_row(r.source, r.kind, r.question, r.response, r.context[:300])
    out = _console()
    out.print(table)
    if estimate is not None:
        out.print(str(estimate))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from engine.core.events import Emitter
    from engine.core.workspace import Workspace
    from engine.export.stage import export_models
    from engine.render import RichRenderer

    cfg = _load(args.workspace, args.set)
    ws = Workspace(cfg.workspace_dir)
    if Path(args.workspace).is_dir():
        ws = Workspace(Path(args.workspace).resolve())
    renderer = RichRenderer(_console(stderr=True))
    try:
        out = export_models(cfg, ws, Emitter(renderer), push=args.push)
    finally:
        renderer.close()
    print(json.dumps(out, indent=2))
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from dataclasses import fields, is_dataclass

    from engine.config import RunConfig

    def walk(section: Any, name: str) -> None:
        print(f"[{name}]")
        for key, default, help_text in type(section).describe():
            print(
                f"  {key} = {default!r}  # {help_text}" if help_text else f"  {key} = {default!r}"
            )
        for f in fields(section):
            value = getattr(section, f.name)
            if is_dataclass(value):
                walk(value, f"{name}.{f.name}")

    cfg = RunConfig()
    for f in fields(cfg):
        walk(getattr(cfg, f.name), f.name)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ragtune",
        description="Fine-tune a retriever and reranker on your own documents.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    def add_set(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a setting, e.g. --set embedder.epochs=2",
        )

    p = sub.add_parser("run", help="run or resume every stage of a config")
    p.add_argument("config", help="config.toml, or a workspace folder")
    p.add_argument("--stages", help="comma-separated subset: " + ",".join(_stages()))
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.add_argument("--json", action="store_true", help="print metrics.json at the end")
    add_set(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("init", help="write a documented config file")
    p.add_argument("path", nargs="?", default="ragtune.toml")
    p.add_argument("--sources", nargs="*", help="files or folders to read")
    p.add_argument("--model", help="base embedding model")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser(
        "eval", help="evaluate a model on a BEIR-layout folder, every Matryoshka dim"
    )
    p.add_argument("model", help="model path or Hub name")
    p.add_argument("data", help="folder with corpus.jsonl, queries.jsonl, qrels.tsv")
    p.add_argument("--dims", help="e.g. 384,256,128,64 (default: derived from the model)")
    p.add_argument("--qrels", default="qrels.tsv")
    p.add_argument("--queries", default="queries.jsonl")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--query-prompt", default=None)
    p.add_argument("--document-prompt", default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("status", help="which stages of a workspace are done")
    p.add_argument("workspace")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("ask", help="retrieve (and rerank) passages for a question")
    p.add_argument("workspace", help="workspace folder or config")
    p.add_argument("question")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--dim", type=int, default=None, help="truncated Matryoshka dim")
    p.add_argument("--compare", action="store_true", help="base and fine-tuned side by side")
    p.add_argument("--no-rerank", action="store_true")
    p.add_argument("--answer", action="store_true", help="answer with the configured LLM")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("generate", help="generate sample rows for review")
    p.add_argument("config")
    p.add_argument("--sample", type=int, default=8, metavar="K")
    p.add_argument("--json", action="store_true")
    add_set(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("export", help="write model cards; push to the Hub with --push")
    p.add_argument("workspace", help="workspace folder or config")
    p.add_argument("--push", action="store_true")
    add_set(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("config", help="list every setting with its default and help")
    p.set_defaults(func=cmd_config)
    return parser


def _stages() -> tuple[str, ...]:
    from engine.core.workspace import STAGES

    return STAGES


def main(argv: list[str] | None = None) -> int:
    from rich.markup import escape

    quiet_libraries()
    args = build_parser().parse_args(argv)
    err = _console(stderr=True)
    try:
        return int(args.func(args) or 0)
    except Cancelled as exc:
        err.print(f"[yellow]{exc}[/]")
        return EXIT_CODES["cancelled"]
    except RagtuneError as exc:
        if args.debug:
            raise
        where = f"{exc.where}: " if exc.where else ""
        err.print(f"[red]error:[/] {escape(where + exc.message)}")
        if exc.hint:
            err.print(f"[cyan]fix:[/] {escape(exc.hint)}")
        return exc.exit_code
    except KeyboardInterrupt:
        err.print("[yellow]interrupted; finished work is kept in the workspace[/]")
        return EXIT_CODES["cancelled"]
    except Exception as exc:
        if args.debug:
            raise
        err.print(f"[red]error:[/] {escape(f'{type(exc).__name__}: {exc}')}")
        err.print(
            "[cyan]fix:[/] this is a bug or an unexpected input; rerun with --debug for details"
        )
        return EXIT_CODES["error"]
