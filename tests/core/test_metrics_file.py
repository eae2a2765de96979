"""metrics.json through its one reader and writer: sections kept, writes atomic, damage named."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ragtune.engine.core.errors import RagtuneError
from ragtune.engine.core.metrics_file import MetricsFile, MetricsFileError
from ragtune.engine.deploy.results import read_deploy
from ragtune.engine.evaluate.results import read_results

EMBEDDER = {"suite": "held-out", "held-out": {"base": {"dim_64_cosine_ndcg@10": 0.41}}}


@pytest.fixture
def metrics(tmp_path: Path) -> MetricsFile:
    out = MetricsFile(tmp_path / "metrics.json")
    out.write("embedder", EMBEDDER)
    out.write("reranker", {"trained": False, "reason": "too few queries"})
    return out


def test_a_write_replaces_only_its_own_section(metrics: MetricsFile) -> None:
    metrics.write("reranker", {"new": 2})
    assert json.loads(metrics.path.read_text()) == {"embedder": EMBEDDER, "reranker": {"new": 2}}
    assert metrics.section("embedder") == EMBEDDER
    assert metrics.section("deploy") is None


def test_a_missing_file_reads_empty_and_the_first_write_makes_it(tmp_path: Path) -> None:
    fresh = MetricsFile(tmp_path / "runs" / "new" / "metrics.json")
    assert not fresh.exists() and fresh.read() == {}
    assert read_results(fresh.path).empty
    assert read_deploy(fresh.path).suites == []
    fresh.write("deploy", {"suites": {}})
    assert fresh.read() == {"deploy": {"suites": {}}}


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
        lambda p: p.write_bytes(b"\xff\xfe not text"),
        lambda p: p.write_text("[1, 2]"),
    ],
    ids=["truncated", "not utf-8", "not an object"],
)
def test_a_damaged_file_is_a_named_error_with_the_fix(metrics: MetricsFile, damage) -> None:
    damage(metrics.path)
    for read in (
        metrics.read,
        lambda: read_results(metrics.path),
        lambda: read_deploy(metrics.path),
    ):
        with pytest.raises(MetricsFileError) as caught:
            read()
        said = str(caught.value)
        assert isinstance(caught.value, RagtuneError)
        assert said.startswith(f"{metrics.path}: cannot be read (")
        assert "fix: run `ragtune run` again" in said
    assert metrics.problem("embedder").startswith("cannot be read (")


def test_a_write_over_a_damaged_file_starts_it_afresh(metrics: MetricsFile) -> None:
    """The sections it lost are missing, so ``status`` names them and their stages rerun."""
    metrics.path.write_text('{"embedder": {"suite": "held')
    metrics.write("deploy", {"rows": 3})
    assert metrics.read() == {"deploy": {"rows": 3}}
    assert metrics.problem("deploy") == ""
    assert metrics.problem("embedder") == "has no 'embedder' results"


def test_a_write_that_fails_leaves_the_old_file_whole(
    metrics: MetricsFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = metrics.path.read_bytes()

    def disk_full(src: str | Path, dst: str | Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(OSError):
        metrics.write("embedder", {"suite": "benchmark"})
    assert metrics.path.read_bytes() == before
    assert [p.name for p in metrics.path.parent.iterdir()] == ["metrics.json"]


def test_a_value_that_cannot_be_written_leaves_the_old_file_whole(metrics: MetricsFile) -> None:
    before = metrics.path.read_bytes()
    with pytest.raises(ValueError):
        metrics.write("embedder", {"loop": _loop()})
    assert metrics.path.read_bytes() == before


def _loop() -> dict:
    d: dict = {}
    d["self"] = d
    return d


def test_text_is_the_file_checked(metrics: MetricsFile) -> None:
    assert json.loads(metrics.text()) == json.loads(metrics.path.read_text())
    metrics.path.write_text("{")
    with pytest.raises(MetricsFileError):
        metrics.text()


def test_a_run_that_did_not_rebuild_a_damaged_file_warns_and_succeeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``ragtune run --stages ingest`` ran what it was asked; the results it prints after are
    what is damaged, so it names the file and the fix on stderr instead of failing."""
    from ragtune.engine.cli import _print_results
    from ragtune.engine.core.workspace import Workspace

    ws = Workspace.create(tmp_path / "ws")
    ws.metrics_path.write_text('{"embedder": {"suite": "held')
    for as_json in (False, True):
        _print_results(ws, as_json=as_json)
        said = capsys.readouterr()
        err = " ".join(said.err.split())
        assert f"{ws.metrics_path}: cannot be read (JSONDecodeError" in err
        assert "fix: run `ragtune run` again" in err
        assert said.out.strip() == f"workspace: {ws.root}"
