"""The deploy table and the interpolation as markdown, for report.md and the model card."""

from __future__ import annotations

from ragtune.engine.deploy.results import ENCODER_LABELS, DeployResults, DeploySuite, Interpolation
from ragtune.engine.evaluate.stats import Interval


def _signed(value: Interval) -> str:
    return f"{value.mean:+.4f} [{value.low:+.4f}, {value.high:+.4f}]"


def render_suite(suite: DeploySuite, suggested: tuple[str, int, str] | None = None) -> str:
    lines = [
        f"### Deploy table: {suite.name} queries ({suite.queries} queries)",
        "",
        "| encoder | dim | stored as | nDCG@10 [95% CI] | vs best [95% CI] | bytes/passage "
        "| encode speed |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in suite.rows:
        mark = " **(suggested)**" if (r.encoder, r.dim, r.precision) == suggested else ""
        lines.append(
            f"| {ENCODER_LABELS.get(r.encoder, r.encoder)} | {r.dim} | {r.precision}{mark} "
            f"| {r.ndcg} | {'best' if r.vs_best == Interval(0.0, 0.0, 0.0) else _signed(r.vs_best)} "
            f"| {r.bytes_per_chunk} | {r.encode_ratio:.2f}x |"
        )
    if suite.baseline:
        shown = ", ".join(f"{d}: {v:.4f}" for d, v in sorted(suite.baseline.items(), reverse=True))
        lines += [
            "",
            f"Untrained baseline ({suite.baseline_label}, torch float32) by dim: {shown}.",
        ]
    return "\n".join(lines)


def render_interpolation(interp: Interpolation) -> str:
    tried = ", ".join(f"{t.weight:g}: {t.ndcg:.4f}" for t in interp.tried)
    lines = [
        f"### Base <-> fine-tuned interpolation (dim {interp.dim}, {interp.method})",
        "",
        f"nDCG@10 by weight of the fine-tuned model on {interp.select_queries} held-out queries "
        f"used to choose: {tried}. Chosen: **{interp.chosen:g}**"
        + (f" (saved to `{interp.saved}`)." if interp.saved else "."),
        "",
        "| queries | chosen | fine-tuned | untrained | chosen vs fine-tuned | chosen vs untrained |",
        "|---|---|---|---|---|---|",
    ]
    for suite, values in interp.report.items():
        untrained = values.get("base_rotated") or values.get("base")
        count = interp.report_queries if suite == "held-out" else ""
        name = f"{suite} (the other {count})" if count else suite
        lines.append(
            f"| {name} | {values['chosen']} | {values['tuned']} | {untrained} "
            f"| {_signed(values['vs_tuned'])} | {_signed(values['vs_base'])} |"
        )
    return "\n".join(lines)


def render_markdown(results: DeployResults) -> str:
    parts = ["## Deploying the embedder\n"]
    sug = results.suggestion
    key = (sug.encoder, sug.dim, sug.precision) if sug else None
    for suite in results.suites:
        parts.append(render_suite(suite, key if sug and sug.suite == suite.name else None))
        parts.append("")
    if results.suites:
        parts.append(
            "int8 keeps one byte per coordinate (ranges calibrated on the corpus; float query "
            "against the restored corpus), binary one bit (Hamming distance). Encode speed is "
            f"passages per second against torch float32, measured in the same run on "
            f"{results.throughput_texts} passages on this machine.\n"
        )
    if sug:
        parts.append(
            f"**Suggested:** {ENCODER_LABELS.get(sug.encoder, sug.encoder)}, dim {sug.dim}, "
            f"{sug.precision} — {sug.reason}.\n"
        )
    if results.interpolation:
        parts.append(render_interpolation(results.interpolation) + "\n")
    return "\n".join(parts)
