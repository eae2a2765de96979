"""The headless command line: run, init, eval, status, ask, generate, export, config.

stdout carries results (tables, JSON); stderr carries progress and diagnostics.
Exit codes come from ``ragtune.engine.core.errors.EXIT_CODES`` only.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from ragtune.engine.core.errors import (
    EXIT_CODES,
    Cancelled,
    ConfigError,
    ConfigFileError,
    InputError,
    RagtuneError,
)
from ragtune.engine.core.quiet import quiet_libraries


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


def _config_path(path: str) -> Path:
    """The config file ``path`` names, or the ``config.toml`` of a workspace folder.

    Checked here, before the loader, so a wrong path says which file is missing and
    how to get one instead of "invalid value".
    """
    p = Path(path)
    if p.is_dir():
        if (p / "config.toml").is_file():
            return p / "config.toml"
        raise InputError(
            "not a ragtune workspace: the folder has no config.toml",
            where=str(p),
            hint="pass the config file of the run, or its workspace folder (runs/<name>); "
            f"`ragtune init {p / 'config.toml'}` writes a fresh config",
        )
    if not p.exists():
        raise ConfigFileError(
            "config file not found",
            where=str(p),
            hint=f"check the path, or write a documented one with `ragtune init {p}`",
        )
    return p


def _check_toml(p: Path) -> None:
    """Syntax errors with the file, line and column, before any setting is read."""
    try:
        import tomllib
    except ImportError:  # pragma: no cover - Python 3.10
        import tomli as tomllib

    try:
        tomllib.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigFileError(
            f"not a text file (byte {exc.start} is not UTF-8)",
            where=str(p),
            hint="save the config as UTF-8 TOML, or write a fresh one with `ragtune init`",
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(
            f"not valid TOML: {exc}",
            where=str(p),
            hint="correct the file at that line (strings need quotes, [tables] a closing "
            "bracket), or start again from `ragtune init`",
        ) from None
    except OSError as exc:
        raise ConfigFileError(f"cannot read the file: {exc.strerror}", where=str(p)) from None


def _check_overrides(overrides: list[str]) -> None:
    """``--set`` items are ``section.key=value``; anything else is named before loading."""
    import re

    form = "section.key=value with a TOML value, e.g. --set embedder.epochs=2"
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        if "=" not in item or not re.fullmatch(r"[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)+", key):
            raise ConfigError("--set", item, form)


def _load(path: str, overrides: list[str] | None = None) -> Any:
    """A config file, or a workspace folder (its config.toml)."""
    from ragtune.engine.config import load_config

    p = _config_path(path)
    _check_toml(p)
    _check_overrides(overrides or [])
    try:
        return load_config(p, overrides)
    except ConfigError as exc:
        item = _override_of(exc.key, overrides or [])
        if item is None:
            raise
        # The value came from the command line, not from the file the loader names.
        raise ConfigError(exc.key, exc.value, exc.allowed, source=f"--set {item}") from None
    except (AttributeError, TypeError):
        if not overrides:
            raise
        # an override that descends into a value, e.g. --set embedder.epochs.x=1
        raise ConfigError(
            "--set",
            " ".join(overrides),
            "section.key=value where section.key names one setting (list them: ragtune config)",
        ) from None


def _override_of(key: str, overrides: list[str]) -> str | None:
    """The ``--set`` item that gave ``key`` (or a section above or below it), if any."""
    for item in reversed(overrides):
        given = item.split("=", 1)[0].strip()
        if key == given or given.startswith(key + ".") or key.startswith(given + "."):
            return item
    return None


def _at_least(value: int | None, flag: str, minimum: int = 1) -> None:
    """An integer option below its minimum is named with its flag (argparse checks the type)."""
    if value is not None and value < minimum:
        raise ConfigError(flag, value, f"an integer of at least {minimum}")


def _parse_dims(text: str) -> list[int]:
    """``--dims 384,256,128``: positive integers, comma-separated."""
    form = "comma-separated positive integers, e.g. --dims 384,256,128,64"
    try:
        dims = [int(part) for part in text.split(",")]
    except ValueError:
        raise ConfigError("--dims", text, form) from None
    if not dims or any(d < 1 for d in dims):
        raise ConfigError("--dims", text, form)
    return dims


def _parse_stages(text: str | None) -> list[str] | None:
    """``--stages ingest,generate``: known stage names, checked before anything starts."""
    if text is None:
        return None
    stages = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in stages if s not in _stages()]
    if unknown or not stages:
        raise ConfigError(
            "--stages", ",".join(unknown) or text, "comma-separated: " + ",".join(_stages())
        )
    return stages


def _workspace_dir(path: str) -> Path:
    """The workspace a config file points to, or a folder that is one (else exit 3, named)."""
    p = Path(path)
    if p.is_file():
        return _load(str(p)).workspace_dir.resolve()
    if not p.exists():
        raise InputError(
            "no such workspace",
            where=str(p),
            hint="pass a workspace folder (runs/<name>) or the config file of the run",
        )
    if not ((p / "config.toml").is_file() or (p / ".state").is_dir()):
        raise InputError(
            "not a ragtune workspace (no config.toml or .state in it)",
            where=str(p),
            hint="pass the folder a run wrote (runs/<name>) or the run's config file",
        )
    return p.resolve()


def cmd_run(args: argparse.Namespace) -> int:
    from ragtune.engine.api import run_pipeline
    from ragtune.engine.core.events import Emitter
    from ragtune.engine.render import RichRenderer

    stages = _parse_stages(args.stages)
    cfg = _load(args.config, args.set)
    renderer = RichRenderer(_console(stderr=True), quiet=args.quiet)
    cancel = threading.Event()
    _install_cancel(cancel)
    try:
        ws = run_pipeline(cfg, events=Emitter(renderer), cancel=cancel, stages=stages)
    except Cancelled:
        if args.quiet:
            raise
        return EXIT_CODES["cancelled"]  # the renderer has said where it stopped and why
    finally:
        renderer.close()
    _print_results(ws, as_json=args.json)
    return 0


def _print_results(ws: Any, *, as_json: bool) -> None:
    from ragtune.engine.core.metrics_file import MetricsFile, MetricsFileError
    from ragtune.engine.evaluate.ir import COMPARE_METRICS
    from ragtune.engine.evaluate.results import read_results
    from ragtune.engine.generate.base import GenerationSummary
    from ragtune.engine.render import (
        gains_table,
        generation_failures,
        metrics_table,
        recommendation_text,
        retrievers_table,
    )

    out = _console()
    state = ws.stage_state("generate") or {}
    generated = GenerationSummary.from_dict(state.get("summary"))
    failures = generation_failures(generated) if state.get("incomplete") else ""
    if failures:
        # on stderr, so `--json` stdout stays data; after the live display, so it is seen
        _console(stderr=True).print(f"[yellow]{failures}[/]", soft_wrap=True, highlight=False)
    metrics = MetricsFile(ws.metrics_path)
    if not metrics.exists():
        out.print(f"workspace: {ws.root}")
        return
    try:
        if as_json:
            print(metrics.text())
            return
        results = read_results(metrics.path)
    except MetricsFileError as exc:
        # The stages asked for ran (a --stages run may not rebuild it): say so, do not fail.
        _console(stderr=True).print(str(exc), style="yellow", soft_wrap=True, markup=False)
        out.print(f"workspace: {ws.root}")
        return
    for name in ("benchmark", "held-out"):
        suite = results.suite(name)
        if suite is None:
            continue
        rows = suite.rows(COMPARE_METRICS)
        out.print(metrics_table(rows, f"{name} queries: base vs fine-tuned"))
        if suite.gains:
            out.print(gains_table(suite))
        if suite.others:
            out.print(retrievers_table(suite))
    if results.recommendation is not None:
        out.print(recommendation_text(results.recommendation), soft_wrap=True)
    rr = ws.root / "report_reranker.md"
    if rr.exists():
        out.print(rr.read_text(encoding="utf-8"), soft_wrap=True, markup=False)
    out.print(f"report: {ws.report_path}\nmodels: {ws.models_dir}")


def cmd_init(args: argparse.Namespace) -> int:
    from ragtune.engine.config import RunConfig

    target = Path(args.path)
    if target.exists() and not args.force:
        raise RagtuneError(
            "file exists", where=str(target), hint="pass --force to overwrite, or another path"
        )
    from ragtune.engine.core.models import offline_defaults

    cfg = RunConfig()
    folder = target.expanduser().resolve().parent
    for raw in args.sources or []:
        # Typed from here, read from the config's folder: stored so both mean the same file.
        path = Path(raw).expanduser().resolve()
        if not path.exists():
            raise InputError(
                "source path does not exist",
                where=raw,
                hint="give files or folders of .pdf/.docx/.md/.txt that exist",
            )
        cfg.sources.paths.append(
            path.relative_to(folder).as_posix() if path.is_relative_to(folder) else str(path)
        )
    if args.model:
        cfg.embedder.base_model = args.model
    err = _console(stderr=True)
    for note in offline_defaults(cfg):
        err.print(f"[yellow]the Hub cannot be reached: {note}, which is here[/]", soft_wrap=True)
    cfg.save(target)
    err.print(f"wrote {target}; edit it, then: ragtune run {target}", soft_wrap=True)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    _check_local_model(args.model)  # before the imports below, which take seconds
    from ragtune.engine.config.retrieval import RetrievalConfig
    from ragtune.engine.core.models import derive_dims, load_embedder, pick_device
    from ragtune.engine.embedder.train import embedding_dim
    from ragtune.engine.evaluate.beir import load_beir
    from ragtune.engine.evaluate.hybrid import evaluate_with_bm25
    from ragtune.engine.evaluate.ir import metrics_by_dim
    from ragtune.engine.evaluate.labels import is_quote_folder, load_quote_labels

    dims = _parse_dims(args.dims) if args.dims is not None else None
    _at_least(args.batch_size, "--batch-size")
    folder = Path(args.data)
    if is_quote_folder(folder):
        from ragtune.engine.core.records import read_chunks

        data = load_quote_labels(folder, read_chunks(_quote_chunks(args)))
    else:
        data = load_beir(folder, qrels=args.qrels, queries=args.queries)
    model = load_embedder(args.model, device=pick_device(args.device))
    dims = dims or derive_dims(embedding_dim(model))
    suite = evaluate_with_bm25(
        model,
        data,
        dims,
        RetrievalConfig(),
        batch_size=args.batch_size,
        query_prompt=args.query_prompt,
        document_prompt=args.document_prompt,
    )
    if args.json:
        # The model's keys as before; BM25's and the hybrid's under their own prefixes.
        flat = dict(suite["base"])
        for name, prefix in (("bm25", "bm25_"), ("hybrid_base", "hybrid_")):
            flat.update({prefix + k: v for k, v in suite["retrievers"][name].items()})
        print(json.dumps(flat, indent=2))
        return 0
    from rich.table import Table

    from ragtune.engine.evaluate.results import parse_suite
    from ragtune.engine.render import retrievers_table

    table = Table(title=f"{args.model} on {args.data} ({len(data.queries)} queries)")
    metrics = ("ndcg@10", "mrr@10", "map@100", "accuracy@1", "recall@10", "recall@100")
    table.add_column("dim", justify="right")
    for m in metrics:
        table.add_column(m, justify="right")
    for dim, values in metrics_by_dim(suite["base"]).items():
        table.add_row(str(dim), *(f"{values.get(m, float('nan')):.4f}" for m in metrics))
    out = _console()
    out.print(table)
    typed = parse_suite(str(args.data), suite)
    labels = {"base": "dense (this model)", "hybrid_base": "hybrid (model + BM25)"}
    out.print(
        retrievers_table(
            typed,
            title=f"BM25 over this corpus and hybrid, nDCG@10 ({suite['fusion']}); change vs "
            "the model alone with its 95% paired-bootstrap interval",
            labels=labels,
        )
    )
    return 0


def _check_local_model(name: str) -> None:
    """A model given as a local path that does not exist is named at once (exit 3), instead of
    being looked up on the Hub as a name (seconds of retries offline, then exit 4)."""
    path = Path(name).expanduser()
    if path.exists():
        return
    first = Path(name).parts[0] if Path(name).parts else ""
    local = (
        name.startswith(("/", ".", "~"))
        or "\\" in name
        or name.count("/") >= 2
        or name.endswith("/")
        or ("/" in name and Path(first).is_dir())
    )
    if local:
        raise InputError(
            "no model folder at this path",
            where=name,
            hint="check the path (a folder with config.json or modules.json, e.g. "
            "runs/<name>/models/embedder), or give a Hub name as organisation/model",
        )


def _quote_chunks(args: argparse.Namespace) -> Path:
    """The chunks that quote-labelled answers are looked up in: ``--chunks`` (a workspace or
    its chunks.parquet), else the workspace the model was trained in."""
    if args.chunks:
        given = Path(args.chunks)
        path = given if given.suffix == ".parquet" else given / "chunks.parquet"
        if not path.is_file():
            raise InputError(
                "no chunks.parquet here",
                where=str(given),
                hint="--chunks takes a ragtune workspace (runs/<name>) or its chunks.parquet",
            )
        return path
    model = Path(args.model)
    for folder in (model, *model.parents[:3]):
        if (folder / "chunks.parquet").is_file():
            return folder / "chunks.parquet"
    raise InputError(
        "questions labelled by quoting (answers.tsv) are matched to a run's chunks, and this "
        "model is not inside a workspace",
        where=args.data,
        hint="pass --chunks runs/<name> (the workspace whose chunks hold the quoted text)",
    )


def cmd_status(args: argparse.Namespace) -> int:
    from ragtune.engine.core.workspace import Workspace

    p = Path(args.workspace)
    cfg = None
    if p.is_file():
        cfg = _load(str(p))
        p = cfg.workspace_dir
        if not p.exists():
            raise InputError(
                "this config has not run yet: its workspace does not exist",
                where=str(p),
                hint=f"start it with `ragtune run {args.workspace}`",
            )
    from ragtune.engine.stages import status_text

    ws = Workspace(_workspace_dir(str(p)))
    status = status_text(ws, cfg.for_workspace(ws.root) if cfg is not None else None)
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        for stage, state in status.items():
            print(f"{stage:<9} {state}")
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from ragtune.engine.core.workspace import Workspace
    from ragtune.engine.serve.ask import ask

    _at_least(args.top_k, "--top-k")
    _at_least(args.dim, "--dim")
    ws = Workspace(_workspace_dir(args.workspace))
    trained = [
        d
        for d in (ws.embedder_dir, ws.reranker_dir)
        if (d / "config.json").exists() or (d / "modules.json").exists()
    ]
    if ws.chunks_path.exists() and not trained:
        # the base model would answer, under a "fine-tuned" title: say so instead
        raise InputError(
            "no trained model in this workspace yet (models/embedder and models/reranker "
            "are missing)",
            where=str(ws.root),
            hint=f"train first: `ragtune run {args.workspace}`; to try the base model, "
            "use `ragtune eval BASE_MODEL FOLDER`",
        )
    # The first question of a process loads the models and encodes the corpus (or reads it
    # from the workspace's index): tens of seconds on a CPU, so say so on stderr.
    with _console(stderr=True).status("loading the models and the passage index…"):
        result = ask(
            ws,
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
    from ragtune.engine.serve.ask import render_result

    _console().print(render_result(result))
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    """Sample rows for review before paying for the full run."""
    from ragtune.engine.api import sample_generation

    _at_least(args.sample, "--sample")
    cfg = _load(args.config, args.set)
    rows, estimate = sample_generation(cfg, k=args.sample)
    if args.json:
        from dataclasses import asdict

        print(json.dumps([asdict(r) for r in rows], indent=2, ensure_ascii=False))
        return 0
    from rich.table import Table

    def short(text: str, n: int) -> str:
        text = " ".join(text.split())
        return text if len(text) <= n else text[: n - 1] + "…"

    # What each row trains on; optional parts only when some row has them.
    columns = [
        ("source", lambda r: r.source),
        ("kind", lambda r: r.kind),
        ("query", lambda r: r.question),
        ("negative query", lambda r: r.negative_retrieval),
        ("answer", lambda r: r.response),
        ("passage it must find", lambda r: short(r.training_positive, 240)),
    ]
    shown = [(name, get) for name, get in columns if any(get(r) for r in rows)]
    table = Table(title=f"{len(rows)} sample rows", show_lines=True, expand=True)
    widths = {"source": 2, "kind": 1, "passage it must find": 5}
    for name, _ in shown:
        table.add_column(name, overflow="fold", ratio=widths.get(name, 3))
    for r in rows:
        table.add_row(*(get(r) for _, get in shown))
    out = _console()
    out.print(table)
    if estimate is not None:
        out.print(_estimate_table(estimate))
    return 0


def _estimate_table(estimate: Any) -> Any:
    """What the full run would cost, as a small table: calls, tokens, price (or unknown)."""
    from rich.table import Table

    usd = getattr(estimate, "usd", None)
    price = f"about ${usd:,.2f}" if usd is not None else "unknown price"
    table = Table(title="full run estimate", title_justify="left")
    for col in ("calls", "input tokens", "output tokens", "price"):
        table.add_column(col, justify="right")
    table.add_row(
        f"{estimate.calls:,}",
        f"~{estimate.input_tokens:,}",
        f"~{estimate.output_tokens:,}",
        price,
    )
    note = getattr(estimate, "note", "")
    if note:
        table.caption = note
        table.caption_justify = "left"
    return table


def cmd_export(args: argparse.Namespace) -> int:
    from ragtune.engine.core.events import Emitter
    from ragtune.engine.core.workspace import Workspace
    from ragtune.engine.export.stage import export_models
    from ragtune.engine.render import RichRenderer

    ws = Workspace(_workspace_dir(args.workspace))
    overrides = list(args.set or [])
    if args.format:
        formats = [f.strip() for item in args.format for f in item.split(",") if f.strip()]
        overrides.append("export.formats=" + json.dumps(formats))
    if args.dim is not None:
        overrides.append(f"export.dim={args.dim}")
    cfg = _load(str(ws.config_path) if ws.config_path.is_file() else args.workspace, overrides)
    if not ws.embedder_dir.exists():
        raise InputError(
            "no trained embedder in this workspace to export",
            where=str(ws.root),
            hint=f"train one first: `ragtune run {args.workspace}` "
            "(or `--stages train` when generation is done)",
        )
    renderer = RichRenderer(_console(stderr=True))
    try:
        out = export_models(cfg, ws, Emitter(renderer), push=args.push)
    finally:
        renderer.close()
    print(json.dumps(out, indent=2))
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    """Every setting with its default and help, as the TOML a config file holds."""
    from ragtune.engine.config import RunConfig, to_toml

    print(to_toml(RunConfig()), end="")
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

    p = sub.add_parser("eval", help="evaluate a model on labelled queries, every Matryoshka dim")
    p.add_argument("model", help="model path or Hub name")
    p.add_argument(
        "data",
        help="BEIR folder (corpus.jsonl, queries.jsonl, qrels.tsv), or queries.jsonl + "
        "answers.tsv quoting each answer (see --chunks)",
    )
    p.add_argument(
        "--chunks",
        help="with answers.tsv: the workspace whose chunks hold the quotes (default: the "
        "workspace the model was trained in)",
    )
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
    p.add_argument("--sample", type=int, default=8, metavar="K", help="rows to draw (default 8)")
    p.add_argument("--json", action="store_true")
    add_set(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser(
        "export", help="write model cards, ONNX/int8 ONNX/OpenVINO files; push with --push"
    )
    p.add_argument("workspace", help="workspace folder or config")
    p.add_argument("--push", action="store_true")
    p.add_argument(
        "--format",
        action="append",
        metavar="FMT",
        help="onnx, onnx-int8 or openvino (repeat or comma-separate); sets export.formats",
    )
    p.add_argument(
        "--dim", type=int, help="embedding size baked into the files (export.dim; 0 = suggested)"
    )
    add_set(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("config", help="list every setting with its default and help")
    p.set_defaults(func=cmd_config)
    for command in sub.choices.values():
        # Also after the command (`ragtune run X --debug`, as the error hint says); SUPPRESS
        # keeps a --debug given before the command when none follows it.
        command.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
        )
    return parser


def _stages() -> tuple[str, ...]:
    from ragtune.engine.stages import STAGES

    return STAGES


def main(argv: list[str] | None = None) -> int:
    quiet_libraries()
    args = build_parser().parse_args(argv)
    err = _console(stderr=True)
    try:
        return int(args.func(args) or 0)
    except Cancelled as exc:
        err.print(f"[yellow]{exc}[/]", soft_wrap=True)
        return EXIT_CODES["cancelled"]
    except RagtuneError as exc:
        if args.debug:
            raise
        where = f"{exc.where}: " if exc.where else ""
        _say_error(err, where + exc.message, exc.hint)
        return exc.exit_code
    except KeyboardInterrupt:
        err.print("[yellow]interrupted; finished work is kept in the workspace[/]", soft_wrap=True)
        return EXIT_CODES["cancelled"]
    except Exception as exc:
        if args.debug:
            raise
        if isinstance(exc, OSError) and exc.filename and exc.errno in _WRITE_ERRORS:
            _say_error(err, *_write_error(exc))
        else:
            _say_error(
                err,
                f"{type(exc).__name__}: {exc}",
                "this is a bug or an unexpected input; rerun with --debug for details",
            )
        return EXIT_CODES["error"]


def _say_error(err: Any, message: str, hint: str = "") -> None:
    """``error:`` and ``fix:`` lines on stderr, with anything that looks like a key masked."""
    from rich.markup import escape

    from ragtune.engine.core.redact import redact

    err.print(f"[red]error:[/] {escape(redact(message))}", soft_wrap=True)
    if hint:
        err.print(f"[cyan]fix:[/] {escape(redact(hint))}", soft_wrap=True)


_WRITE_ERRORS = {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT}


def _write_error(exc: OSError) -> tuple[str, str]:
    """The file a run could not write (or, for permissions, open), named, with the fix."""
    resume = "; finished work is kept and `ragtune run` resumes from there"
    reason = exc.strerror or type(exc).__name__
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = (
            "free disk space (old runs' checkpoints/ folders can go) or set run.workspace to "
            "a disk with room"
        )
        return f"cannot write {exc.filename}: {reason}", fix + resume
    if exc.errno == errno.EROFS:
        fix = (
            "the workspace is on a read-only file system: remount it read-write, or set "
            "run.workspace to a writable folder"
        )
        return f"cannot write {exc.filename}: {reason}", fix + resume
    fix = (
        "the file or its folder belongs to another user or is read-only: make it yours "
        "(chmod -R u+rw, chown), or set run.workspace to a folder of your own"
    )
    return f"cannot open {exc.filename}: {reason}", fix + resume
