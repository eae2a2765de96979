"""Typed reading of metrics.json's ``deploy`` key: the deploy table, its suggestion, the interpolation.

Torch-free, so the wizard and the CLI render these dataclasses without loading a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragtune.engine.core.metrics_file import MetricsFile
from ragtune.engine.evaluate.stats import Interval

KEY = "deploy"
ENCODER_LABELS = {"torch": "torch", "onnx": "ONNX", "onnx-int8": "int8 ONNX"}


@dataclass(frozen=True)
class DeployRow:
    """One way to ship the model: encoder x Matryoshka size x stored precision.

    ``vs_best`` is the paired-bootstrap difference from the best row on the same queries;
    ``encode_ratio`` is texts per second against torch float32 in the same run (encode plus
    quantisation), so 2.0 is twice as fast.
    """

    encoder: str
    dim: int
    precision: str
    ndcg: Interval
    vs_best: Interval
    bytes_per_chunk: int
    encode_ratio: float

    @property
    def within_best(self) -> bool:
        """The queries cannot tell it from the best row (the difference's interval reaches 0)."""
        return self.vs_best.high >= 0

    @property
    def label(self) -> str:
        return f"{ENCODER_LABELS.get(self.encoder, self.encoder)} {self.dim} {self.precision}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "encoder": self.encoder,
            "dim": self.dim,
            "precision": self.precision,
            "ndcg@10": _interval_dict(self.ndcg),
            "vs_best": _interval_dict(self.vs_best),
            "bytes_per_chunk": self.bytes_per_chunk,
            "encode_ratio": self.encode_ratio,
        }


@dataclass(frozen=True)
class DeploySuite:
    """The table on one query set; ``baseline`` is the evaluated base (+ rotation) nDCG@10 per size."""

    name: str
    queries: int
    rows: list[DeployRow]
    baseline: dict[int, float] = field(default_factory=dict)
    baseline_label: str = "base + rotation"

    @property
    def best(self) -> DeployRow | None:
        return max(self.rows, key=lambda r: r.ndcg.mean, default=None)

    def row(self, encoder: str, dim: int, precision: str) -> DeployRow | None:
        return next(
            (r for r in self.rows if (r.encoder, r.dim, r.precision) == (encoder, dim, precision)),
            None,
        )


@dataclass(frozen=True)
class Suggestion:
    """The smallest index the deciding queries cannot tell from the best row, and why."""

    encoder: str
    dim: int
    precision: str
    suite: str
    reason: str


@dataclass(frozen=True)
class WeightScore:
    weight: float
    ndcg: float


@dataclass(frozen=True)
class Interpolation:
    """Base <-> fine-tuned weight interpolation: the weight chosen on one half of the held-out
    queries and its quality on the other half (and on the benchmark), against both ends."""

    dim: int
    method: str
    select_queries: int
    report_queries: int
    tried: list[WeightScore]
    chosen: float
    report: dict[str, dict[str, Interval]]
    saved: str = ""

    def gain(self, suite: str, against: str) -> Interval | None:
        return self.report.get(suite, {}).get(f"vs_{against}")


@dataclass(frozen=True)
class DeployResults:
    suites: list[DeploySuite]
    suggestion: Suggestion | None
    interpolation: Interpolation | None
    throughput_texts: int = 0

    @property
    def empty(self) -> bool:
        return not self.suites and self.interpolation is None

    def suite(self, name: str) -> DeploySuite | None:
        return next((s for s in self.suites if s.name == name), None)

    @property
    def deciding(self) -> DeploySuite | None:
        """The suite the suggestion was made on (the benchmark when there is one)."""
        if self.suggestion is not None:
            return self.suite(self.suggestion.suite)
        return self.suites[0] if self.suites else None


def _interval_dict(value: Interval) -> dict[str, float]:
    return {"mean": value.mean, "low": value.low, "high": value.high}


def _interval(data: Any) -> Interval:
    data = data or {}
    return Interval(
        float(data.get("mean", 0.0)), float(data.get("low", 0.0)), float(data.get("high", 0.0))
    )


def parse_deploy(data: dict[str, Any] | None) -> DeployResults:
    """From the ``deploy`` value of metrics.json (missing or empty: an empty result)."""
    data = data or {}
    suites = [
        DeploySuite(
            name=name,
            queries=int(suite.get("queries", 0)),
            rows=[
                DeployRow(
                    encoder=str(r["encoder"]),
                    dim=int(r["dim"]),
                    precision=str(r["precision"]),
                    ndcg=_interval(r.get("ndcg@10")),
                    vs_best=_interval(r.get("vs_best")),
                    bytes_per_chunk=int(r.get("bytes_per_chunk", 0)),
                    encode_ratio=float(r.get("encode_ratio", 0.0)),
                )
                for r in suite.get("rows", [])
            ],
            baseline={int(k): float(v) for k, v in (suite.get("baseline") or {}).items()},
            baseline_label=str(suite.get("baseline_label", "base + rotation")),
        )
        for name, suite in (data.get("suites") or {}).items()
    ]
    sug = data.get("suggestion")
    suggestion = (
        Suggestion(
            encoder=str(sug["encoder"]),
            dim=int(sug["dim"]),
            precision=str(sug["precision"]),
            suite=str(sug["suite"]),
            reason=str(sug.get("reason", "")),
        )
        if sug
        else None
    )
    interp = data.get("interpolation")
    interpolation = (
        Interpolation(
            dim=int(interp["dim"]),
            method=str(interp.get("method", "")),
            select_queries=int(interp.get("select_queries", 0)),
            report_queries=int(interp.get("report_queries", 0)),
            tried=[WeightScore(float(w), float(s)) for w, s in interp.get("tried", [])],
            chosen=float(interp["chosen"]),
            report={
                suite: {name: _interval(v) for name, v in values.items()}
                for suite, values in (interp.get("report") or {}).items()
            },
            saved=str(interp.get("saved", "")),
        )
        if interp
        else None
    )
    return DeployResults(
        suites=suites,
        suggestion=suggestion,
        interpolation=interpolation,
        throughput_texts=int(data.get("throughput_texts", 0)),
    )


def read_deploy(metrics_path: str | Path) -> DeployResults:
    """The deploy results of a workspace's metrics.json (empty when the stage has not run)."""
    return parse_deploy(MetricsFile(metrics_path).section(KEY))


def interval_dict(value: Interval) -> dict[str, float]:
    """The stored form of an interval, for the stage that writes this key."""
    return _interval_dict(value)
