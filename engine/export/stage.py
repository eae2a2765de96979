"""Export: model cards with the measured Matryoshka table, and upload to the Hugging Face Hub."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ragtune.engine.config import RunConfig
from ragtune.engine.config.training import LOSSES, EmbedderConfig
from ragtune.engine.core.errors import OfflineError, RagtuneError
from ragtune.engine.core.events import Emitter
from ragtune.engine.core.metrics_file import MetricsFile
from ragtune.engine.core.models import hub_reachable, is_network_error
from ragtune.engine.core.payloads import ExportSummary, PrepareSummary
from ragtune.engine.core.workspace import Workspace
from ragtune.engine.evaluate.keys import metric_key

BEGIN = "<!-- ragtune:begin -->"
END = "<!-- ragtune:end -->"


def model_card_text(cfg: RunConfig, ws: Workspace) -> str:
    """The ragtune section of the embedder's card: what it was trained on and what it scores."""
    emb = MetricsFile(ws.metrics_path).section("embedder") or {}
    dims = emb.get("dims", [])
    lines = [
        "## Fine-tuned with ragtune",
        "",
        f"- Base model: `{cfg.embedder.base_model}`",
        f"- Training data: {_data_line(ws)}",
        f"- Loss: {_loss_line(cfg.embedder)}, at dims {dims}",
        f"- Generator: {cfg.generation.resolved}",
        "",
    ]
    for suite in ("benchmark", "held-out"):
        if suite not in emb:
            continue
        base, tuned = emb[suite]["base"], emb[suite]["tuned"]
        rotated = emb[suite].get("base_rotated")
        lines += [
            f"### nDCG@10 on {suite} queries ({emb[suite]['queries']} queries)",
            "",
            "| dim | base | base + rotation | fine-tuned | vs base | vs base + rotation |"
            if rotated
            else "| dim | base | fine-tuned | vs base |",
            "|---|---|---|---|---|---|" if rotated else "|---|---|---|---|",
        ]
        for d in dims:
            key = metric_key(d, "ndcg@10")
            b, t = base[key], tuned[key]
            if rotated:
                r = rotated[key]
                lines.append(f"| {d} | {b:.4f} | {r:.4f} | {t:.4f} | {_rel(t, b)} | {_rel(t, r)} |")
            else:
                lines.append(f"| {d} | {b:.4f} | {t:.4f} | {_rel(t, b)} |")
        lines.append("")
        if rotated:
            lines += [
                "base + rotation is the base model with the same corpus rotation and no "
                "training: the last column is what training itself added.",
                "",
            ]
        gains = emb[suite].get("gains")
        if gains:
            from ragtune.engine.evaluate.ir import render_gains_markdown

            lines += [render_gains_markdown(gains["by_dim"], gains["queries"], gains["against"])]
    from ragtune.engine.retrieval.export import retrieval_card

    lines += [retrieval_card(ws)]
    lines += _deploy_lines(ws)
    small = dims[-1] if dims else 64
    lines += [
        "### Use it",
        "",
        "Needs sentence-transformers 5.4 or newer (the module paths this model records).",
        "",
        "```python",
        "from sentence_transformers import SentenceTransformer",
        "",
        "model = SentenceTransformer(PATH_OR_REPO)",
        f"# smaller, faster vectors: keep the first {small} dimensions (Matryoshka)",
        f"small = SentenceTransformer(PATH_OR_REPO, truncate_dim={small})",
        "embeddings = model.encode_document(passages)",
        "query = model.encode_query('your question')",
        "```",
        "",
    ]
    return "\n".join(lines)


def _deploy_lines(ws: Workspace) -> list[str]:
    """The deploy table and interpolation, when the deploy stage ran."""
    from ragtune.engine.deploy.report import render_markdown
    from ragtune.engine.deploy.results import read_deploy

    results = read_deploy(ws.metrics_path)
    if results.empty:
        return []
    body = render_markdown(results).replace("## Deploying the embedder", "### Deploying it", 1)
    return [body.replace("\n### ", "\n#### "), ""]


def deploy_formats(cfg: RunConfig, ws: Workspace, events: Emitter) -> dict[str, Any]:
    """``export.formats`` written to models/embedder-deploy, each loaded back and compared."""
    from dataclasses import asdict

    from ragtune.engine.core.models import load_embedder
    from ragtune.engine.data.prepare import load_prepared
    from ragtune.engine.deploy.results import read_deploy
    from ragtune.engine.deploy.stage import interpolated_dir
    from ragtune.engine.embedder.train import column_prompts, embedding_dim
    from ragtune.engine.export.onnx import export_formats, require

    for fmt in cfg.export.formats:
        require(fmt)
    source = ws.embedder_dir
    if cfg.export.model == "interpolated":
        source = interpolated_dir(ws)
        if not source.is_dir():
            raise RagtuneError(
                "no interpolated embedder to export",
                where="export.model",
                hint="set deploy.interpolate = true and run the deploy stage (if it chose the "
                "fine-tuned weights alone, nothing is saved: export the tuned model)",
            )
    model = load_embedder(
        str(source), device="cpu", trust_remote_code=cfg.embedder.trust_remote_code
    )
    suggestion = read_deploy(ws.metrics_path).suggestion
    dim = cfg.export.dim or (suggestion.dim if suggestion else 0) or embedding_dim(model)
    corpus = load_prepared(ws).corpus
    sample = [corpus[c] for c in sorted(corpus)][:64]
    folder = ws.models_dir / "embedder-deploy"
    events.info(f"exporting {', '.join(cfg.export.formats)} at dim {dim} to {folder}")
    checks = export_formats(
        model,
        folder,
        list(cfg.export.formats),
        dim=dim,
        sample=sample,
        document_prompt=column_prompts(model, cfg.embedder).get("positive"),
    )
    lines = [
        "## Deployment files (ragtune)",
        "",
        f"From `{source.name}`, with the corpus rotation and size {dim} baked in: every file "
        "outputs the unit-length vectors that were evaluated. Checked against the torch model "
        f"on {checks[0].texts if checks else 0} of the run's passages:",
        "",
        "| format | file | size | max abs difference | lowest cosine |",
        "|---|---|---|---|---|",
    ]
    for c in checks:
        rel = Path(c.path).relative_to(folder)
        lines.append(
            f"| {c.format} | `{rel}` | {c.bytes / 1e6:.1f} MB | {c.max_abs_diff:.2e} "
            f"| {c.min_cosine:.5f} |"
        )
        events.info(f"{c.format}: max abs difference {c.max_abs_diff:.2e} from torch")
    lines += [
        "",
        "```python",
        "from ragtune.engine.export.onnx import load_exported  # ragtune; or any onnxruntime binding:",
        "# inputs are the tokenizer's tensors, the output is 'sentence_embedding'",
        f"model = load_exported('{folder.name}', 'onnx')",
        "vectors = model.encode_document(passages)",
        "```",
        "",
    ]
    write_card_section(folder, "\n".join(lines))
    return {"folder": str(folder), "dim": dim, "checks": [asdict(c) for c in checks]}


def _rel(value: float, base: float) -> str:
    return f"{(value - base) / base * 100:+.1f}%" if base else "n/a"


def _loss_line(ecfg: EmbedderConfig) -> str:
    choice = LOSSES[ecfg.loss]
    settings = "; ".join(f"{name} = {getattr(ecfg, name)!s}" for name in choice.settings)
    negatives = (
        f", with {ecfg.hard_negatives} mined negative(s) per query from ranks "
        f"{ecfg.negative_range_min}-{ecfg.negative_range_max}"
        if ecfg.hard_negatives
        else ""
    )
    return f"{choice.card or ecfg.loss}{f' ({settings})' if settings else ''}{negatives}"


def _data_line(ws: Workspace) -> str:
    recorded = ws.stage_summary("prepare")
    if not recorded:
        return "unknown"
    s = PrepareSummary.from_dict(recorded)
    pairs, corpus, queries = (
        "?" if n is None else n for n in (s.train_pairs, s.corpus, s.eval_queries)
    )
    return f"{pairs} query–passage pairs from {corpus} passages; {queries} held-out queries"


def write_card_section(folder: Path, section: str) -> Path:
    """Put our section into the README.md that sentence-transformers wrote, replacing an older one."""
    card = folder / "README.md"
    text = card.read_text(encoding="utf-8") if card.exists() else ""
    block = f"{BEGIN}\n{section}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    elif text.startswith("---"):
        end = text.find("\n---", 3)
        cut = text.find("\n", end + 1) + 1 if end != -1 else 0
        text = text[:cut] + "\n" + block + "\n\n" + text[cut:]
    else:
        text = block + "\n\n" + text
    card.write_text(text, encoding="utf-8")
    return card


def hub_token(cfg: RunConfig) -> str:
    token = os.environ.get(cfg.export.token_env, "")
    if not token:
        raise RagtuneError(
            f"no Hub token in ${cfg.export.token_env}",
            where="export.token_env",
            hint=f"export {cfg.export.token_env}=hf_... (a write token), or set export.token_env",
        )
    return token


def push_folder(folder: Path, repo_id: str, *, token: str, private: bool) -> str:
    from huggingface_hub import HfApi

    offline = OfflineError(
        f"could not reach the Hugging Face Hub to push {repo_id}",
        hint="check the network (HF_HUB_OFFLINE must be unset); the model is saved locally at "
        f"{folder}",
    )
    if not hub_reachable():
        raise offline
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id, folder_path=str(folder), commit_message="Upload from ragtune"
        )
    except Exception as exc:
        name = type(exc).__name__
        if is_network_error(exc):
            raise offline from None
        raise RagtuneError(f"push to {repo_id} failed: {name}: {exc}", where=str(folder)) from None
    return str(getattr(info, "commit_url", repo_id))


def export_models(
    cfg: RunConfig, ws: Workspace, events: Emitter, *, push: bool = False
) -> dict[str, Any]:
    if not ws.embedder_dir.exists():
        raise RagtuneError(
            "no trained embedder to export",
            where=str(ws.embedder_dir),
            hint="run the train stage first",
        )
    write_card_section(ws.embedder_dir, model_card_text(cfg, ws))
    from ragtune.engine.retrieval.export import export_retrieval

    retrieval = export_retrieval(ws, ws.embedder_dir)
    out = ExportSummary(
        embedder=str(ws.embedder_dir),
        retrieval=retrieval["retrieval"],
        bm25_index=retrieval["bm25_index"],
    )
    # A reranker left by an earlier run is not this run's once the stage is switched off.
    reranker = ws.reranker_dir.exists() and cfg.reranker.enabled
    if reranker:
        out.reranker = str(ws.reranker_dir)
    if cfg.export.formats:
        out.deploy = deploy_formats(cfg, ws, events)
    if push:
        token = hub_token(cfg)
        targets = [(ws.embedder_dir, cfg.export.embedder_repo, "export.embedder_repo")]
        if reranker:
            targets.append((ws.reranker_dir, cfg.export.reranker_repo, "export.reranker_repo"))
        urls: dict[Path, str] = {}
        for folder, repo, key in targets:
            if not repo:
                raise RagtuneError(
                    "push_to_hub is on but no repo id is set",
                    where=key,
                    hint="set it to user/name, e.g. me/handbook-embed",
                )
            events.info(f"pushing {folder.name} to {repo}")
            urls[folder] = push_folder(folder, repo, token=token, private=cfg.export.private)
        out.embedder_url = urls.get(ws.embedder_dir)
        out.reranker_url = urls.get(ws.reranker_dir)
    return out.to_dict()
