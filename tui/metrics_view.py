"""Reads evaluation results (``metrics.json``, else ``EvalRow`` events) into table-ready rows."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.core.events import EvalRow, read_events

KEY = re.compile(r"^(?:eval_)?dim_(\d+)_cosine_(.+)$")
SHOWN = ("ndcg@10", "mrr@10", "map@100", "accuracy@1", "accuracy@10", "recall@10")


@dataclass
class Comparison:
    """metric values per dim, for the base and the fine-tuned embedder, and the reranker rows."""

    base: dict[int, dict[str, float]] = field(default_factory=dict)
    tuned: dict[int, dict[str, float]] = field(default_factory=dict)
    reranker: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def dims(self) -> list[int]:
        return sorted(set(self.base) | set(self.tuned), reverse=True)

    @property
    def empty(self) -> bool:
        return not (self.base or self.tuned or self.reranker)

    def rows(
        self, metrics: tuple[str, ...] = SHOWN
    ) -> list[tuple[int, str, float | None, float | None]]:
        out = []
        for dim in self.dims:
            for metric in metrics:
                b = self.base.get(dim, {}).get(metric)
                t = self.tuned.get(dim, {}).get(metric)
                if b is not None or t is not None:
                    out.append((dim, metric, b, t))
        return out


def split_flat(flat: dict[str, Any]) -> dict[int, dict[str, float]]:
    out: dict[int, dict[str, float]] = {}
    for key, value in flat.items():
        m = KEY.match(key)
        if m and isinstance(value, (int, float)):
            out.setdefault(int(m.group(1)), {})[m.group(2)] = float(value)
    return out


def load_comparison(metrics_path: Path, events_path: Path | None = None) -> Comparison:
    comp = Comparison()
    if metrics_path.exists():
        try:
            data = json.loads(metrics_path.read_text(encoding="utf-8"))
        except ValueError:
            data = {}
        emb = data.get("embedder", {}) if isinstance(data, dict) else {}
        comp.base = split_flat(emb.get("base", {}))
        comp.tuned = split_flat(emb.get("tuned", {}))
        rr = data.get("reranker", {}) if isinstance(data, dict) else {}
        for label, values in (rr or {}).items():
            if isinstance(values, dict):
                nums = {k: float(v) for k, v in values.items() if isinstance(v, (int, float))}
                if nums:
                    comp.reranker[label] = nums
        if not comp.empty:
            return comp
    if events_path is not None:
        for ev in read_events(events_path):
            if isinstance(ev, EvalRow):
                add_eval_row(comp, ev)
    return comp


def add_eval_row(comp: Comparison, ev: EvalRow) -> None:
    metrics = {}
    for key, value in ev.metrics.items():
        m = KEY.match(key)
        metrics[m.group(2) if m else key] = float(value)
    if ev.dim == 0 or ev.stage == "rerank":
        comp.reranker[ev.model] = metrics
    elif ev.model == "base":
        comp.base[ev.dim] = metrics
    else:
        comp.tuned[ev.dim] = metrics


def change(base: float | None, tuned: float | None) -> tuple[str, str]:
    """The relative change as text, and a style: green better, red worse."""
    if base is None or tuned is None:
        return "–", "dim"
    diff = tuned - base
    rel = f"{diff / base * 100:+.1f}%" if base else f"{diff:+.4f}"
    style = "green" if diff > 1e-9 else "red" if diff < -1e-9 else "dim"
    return rel, style
