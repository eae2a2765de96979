"""report.md: the stages' own markdown sections in pipeline order, rewritten by each stage that
adds one so the file always matches metrics.json."""

from __future__ import annotations

from ragtune.engine.config import RunConfig
from ragtune.engine.core.workspace import Workspace

SECTIONS = ("report_embedder.md", "report_deploy.md", "report_reranker.md")


def write_report(cfg: RunConfig, ws: Workspace) -> None:
    parts = [f"# ragtune report: {cfg.run.name}\n"]
    for name in SECTIONS:
        path = ws.root / name
        if path.exists():
            parts.append(path.read_text(encoding="utf-8"))
    ws.report_path.write_text("\n".join(parts), encoding="utf-8")
