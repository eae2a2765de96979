"""The Retrievers table widget at 80 columns, filled from the engine's typed results reader."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import DataTable, Static

from ragtune.engine.evaluate.results import parse_results
from ragtune.tui.widgets.retriever_table import RetrieverTable

DIMS = (384, 256, 128, 64)


def _flat(value: float) -> dict[str, float]:
    return {f"dim_{d}_cosine_ndcg@10": value - i * 0.01 for i, d in enumerate(DIMS)}


def _changes(mean: float, low: float, high: float) -> dict:
    return {
        "against": "dense base",
        "queries": 30,
        "by_dim": {str(d): {"mean": mean, "low": low, "high": high} for d in DIMS},
    }


METRICS = {
    "embedder": {
        "dims": list(DIMS),
        "benchmark": {
            "queries": 30,
            "corpus": 1033,
            "base": _flat(0.78),
            "base_rotated": _flat(0.78),
            "tuned": _flat(0.80),
            "retrievers": {
                "bm25": {f"dim_{d}_cosine_ndcg@10": 0.696 for d in DIMS},
                "hybrid_base": _flat(0.79),
                "hybrid_tuned": _flat(0.82),
            },
            "changes": {
                "bm25": _changes(-0.09, -0.16, -0.03),
                "base_rotated": _changes(0.0, 0.0, 0.0),
                "tuned": _changes(0.02, -0.01, 0.05),
                "hybrid_base": _changes(0.01, -0.02, 0.03),
                "hybrid_tuned": _changes(0.04, 0.01, 0.07),
            },
        },
        "recommendation": {
            "retriever": "hybrid_tuned",
            "dim": 384,
            "suite": "benchmark",
            "queries": 30,
            "query_source": "labelled benchmark queries",
            "ndcg": 0.82,
            "vs_base": {"mean": 0.04, "low": 0.01, "high": 0.07},
            "runner_up": "tuned",
            "vs_runner_up": {"mean": 0.02, "low": -0.01, "high": 0.04},
            "fusion": "z-score fusion, BM25 weight 0.3, top 100 of each",
            "reason": "hybrid fine-tuned has the best nDCG@10",
            "caveats": [],
        },
    }
}


class Host(App[None]):
    def compose(self) -> ComposeResult:
        yield RetrieverTable()


async def test_the_table_fits_80_columns_and_reads_the_typed_results() -> None:
    results = parse_results(METRICS)
    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        widget = app.query_one(RetrieverTable)
        widget.show(results.suite("benchmark"), results.recommendation)
        await pilot.pause()
        table = widget.query_one(DataTable)
        assert [c.label.plain for c in table.columns.values()] == [
            "retriever",
            "384",
            "256",
            "128",
            "64",
        ]
        labels = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
        assert labels == [
            "BM25",
            "dense base",
            "base + rotation",
            "fine-tuned",
            "hybrid base",
            "hybrid tuned",
        ]
        bm25 = [str(c) for c in table.get_row_at(0)]
        assert bm25[1] == "0.696 -0.090▼"  # beyond the interval: marked
        assert [str(c) for c in table.get_row_at(3)][1] == "0.800 +0.020 "  # within noise
        assert [str(c) for c in table.get_row_at(5)][1] == "0.820 +0.040▲"
        assert [str(c) for c in table.get_row_at(1)][1] == "0.780"  # the baseline itself
        # every column is on screen at 80 columns
        width = sum(col.get_render_width(table) for col in table.columns.values())
        assert width <= 78 and table.size.width <= 80
        pick = str(widget.query_one(".retriever-pick", Static).render())
        assert pick.startswith("ship: hybrid fine-tuned")
        assert "+0.040 [+0.010, +0.070] vs dense base" in pick


async def test_without_retriever_rows_it_says_why() -> None:
    data = {"embedder": {"dims": [64], "held-out": {"queries": 3, "base": {}, "tuned": {}}}}
    results = parse_results(data)
    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        widget = app.query_one(RetrieverTable)
        widget.show(results.suite("held-out"), results.recommendation)
        await pilot.pause()
        assert widget.query_one(DataTable).row_count == 0
        caption = str(widget.query_one(".retriever-caption", Static).render())
        assert "no retriever comparison yet" in caption
        assert "no recommendation yet" in str(widget.query_one(".retriever-pick", Static).render())
