"""The CLI on bad input: a named error and the fix, the documented exit code, never "this is a bug".

Every test calls ``ragtune.engine.cli.main`` for real, as a user would type the command.
"""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path

import pytest
from llm_server import FakeLlmServer

from ragtune.engine.cli import main
from ragtune.engine.config import RunConfig
from ragtune.engine.core.errors import EXIT_CODES, ConfigError, InputError
from ragtune.engine.core.events import RunFailed, StageFinished, StageStarted
from ragtune.engine.core.records import Chunk, chunk_id_for, write_chunks
from ragtune.engine.core.workspace import Workspace

BAD_CONFIG, BAD_INPUT = EXIT_CODES["config"], EXIT_CODES["input"]


def said(capsys: pytest.CaptureFixture[str]) -> str:
    """stderr with rich's line wrapping undone, and a check that it is not a crash report."""
    err = " ".join(capsys.readouterr().err.split())
    assert "this is a bug" not in err and "Traceback" not in err
    return err


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A valid config whose workspace does not exist yet."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nForklift batteries are charged in bay 3.\n")
    path = tmp_path / "c.toml"
    path.write_text('[run]\nname = "probe"\n[sources]\npaths = ["docs"]\n')
    return path


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    """A workspace that ran ingest (it has chunks and a config) but trained no model."""
    ws = Workspace.create(tmp_path / "runs" / "probe")
    RunConfig.from_dict({"run": {"name": "probe"}}).save(ws.config_path)
    text = "Forklift batteries are charged in bay 3."
    write_chunks(
        ws.chunks_path,
        [Chunk(chunk_id=chunk_id_for("a.md", text), doc_id="a.md", text=text, source="a.md")],
    )
    return ws


# -- flags


@pytest.mark.parametrize("dims", ["abc", "64,,32", "64,-8", ""])
def test_eval_bad_dims_names_the_flag_and_the_form(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dims: str
) -> None:
    assert main(["eval", "some-model", str(tmp_path), "--dims", dims]) == BAD_CONFIG
    err = said(capsys)
    assert "--dims" in err and "comma-separated positive integers" in err
    assert "384,256,128,64" in err


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["eval", "m", ".", "--batch-size", "0"], "--batch-size"),
        (["ask", "WS", "q", "--top-k", "0"], "--top-k"),
        (["ask", "WS", "q", "--dim", "-4"], "--dim"),
        (["generate", "CFG", "--sample", "0"], "--sample"),
    ],
)
def test_integer_flags_below_their_minimum_are_named(
    config: Path, workspace: Workspace, capsys: pytest.CaptureFixture[str], argv, flag
) -> None:
    argv = [
        {"WS": str(workspace.root), "CFG": str(config)}.get(a, a) for a in argv
    ]  # real paths, so the flag is what is wrong
    assert main(argv) == BAD_CONFIG
    err = said(capsys)
    assert flag in err and "an integer of at least 1" in err


@pytest.mark.parametrize("item", ["embedder.epochs", "=3", "epochs=2", "run.name.x=1"])
def test_bad_set_values_name_set_and_the_form(
    config: Path, capsys: pytest.CaptureFixture[str], item: str
) -> None:
    assert main(["run", str(config), "--set", item]) == BAD_CONFIG
    err = said(capsys)
    assert "--set" in err and "section.key" in err


def test_set_with_a_wrong_type_names_the_setting(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", str(config), "--set", "embedder.epochs=many"]) == BAD_CONFIG
    assert "embedder.epochs" in said(capsys)


@pytest.mark.parametrize("stages", ["foo", "ingest,trian", ",", ""])
def test_unknown_stages_are_refused_before_anything_is_written(
    config: Path, capsys: pytest.CaptureFixture[str], stages: str
) -> None:
    assert main(["run", str(config), "--stages", stages]) == BAD_CONFIG
    err = said(capsys)
    assert "--stages" in err and "ingest,index,generate,prepare" in err
    assert not (config.parent / "runs").exists()


# -- config files and workspaces


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.toml"
    assert main(["run", str(missing)]) == BAD_CONFIG
    err = said(capsys)
    assert f"{missing}: config file not found" in err and "ragtune init" in err


def test_bad_toml_names_file_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[run]\nname = probe\n")
    assert main(["run", str(bad)]) == BAD_CONFIG
    err = said(capsys)
    assert f"{bad}: not valid TOML" in err and "line 2" in err
    assert "ragtune init" in err


def test_config_that_is_not_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bin.toml"
    bad.write_bytes(b"\xff\xfe\x00[run]")
    assert main(["run", str(bad)]) == BAD_CONFIG
    assert "not a text file" in said(capsys)


@pytest.mark.parametrize("command", ["run", "status", "export"])
def test_folder_that_is_not_a_workspace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    assert main([command, str(folder)]) == BAD_INPUT
    err = said(capsys)
    assert f"{folder}: not a ragtune workspace" in err and "runs/<name>" in err


def test_ask_on_a_folder_that_is_not_a_workspace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ask", str(tmp_path), "where are batteries charged?"]) == BAD_INPUT
    assert "not a ragtune workspace" in said(capsys)


def test_status_of_a_missing_workspace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", str(tmp_path / "gone")]) == BAD_INPUT
    assert "no such workspace" in said(capsys)


def test_status_of_a_config_that_never_ran(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", str(config)]) == BAD_INPUT
    err = said(capsys)
    assert "has not run yet" in err and f"ragtune run {config}" in err


def test_ask_without_a_trained_model(
    workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ask", str(workspace.root), "where are batteries charged?"]) == BAD_INPUT
    err = said(capsys)
    assert "no trained model in this workspace" in err and "ragtune run" in err


def test_export_without_a_trained_model(
    workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", str(workspace.root)]) == BAD_INPUT
    err = said(capsys)
    assert "no trained embedder" in err and "ragtune run" in err


# -- what the user reads on the way


@pytest.mark.parametrize(("usd", "price"), [(None, "unknown price"), (1.2345, "about $1.23")])
def test_generate_sample_prints_a_readable_estimate(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch, usd, price
) -> None:
    from ragtune.engine import api
    from ragtune.engine.generate.llm_cost import CostEstimate

    estimate = CostEstimate(
        calls=180, input_tokens=72_000, output_tokens=54_000, usd=usd, note="model openai/x"
    )
    monkeypatch.setattr(api, "sample_generation", lambda cfg, k=None: ([], estimate))
    assert main(["generate", str(config), "--sample", "2"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "CostEstimate(" not in out
    for text in ("calls", "input tokens", "output tokens", "180", "~72,000", "~54,000", price):
        assert text in out
    assert "model openai/x" in out


def render(*events) -> str:
    from rich.console import Console

    from ragtune.engine.render import RichRenderer

    buf = io.StringIO()
    renderer = RichRenderer(Console(file=buf, width=200, color_system=None))
    for event in events:
        renderer(event)
    renderer.close()
    return buf.getvalue()


def test_run_failed_names_the_stage_or_the_run() -> None:
    assert "failed in stage generate: boom" in render(RunFailed(stage="generate", error="boom"))
    out = render(RunFailed(stage="", error="lock held"))
    assert "failed in run: lock held" in out and "failed in :" not in out


def test_generate_bar_counts_retries_by_reason_while_it_waits() -> None:
    from ragtune.engine.core.events import Progress

    waiting = Progress(
        stage="generate",
        done=199,
        total=212,
        unit="chunks",
        extra={"retries": {"rate_limited": 7, "timeout": 2}},
    )
    out = render(StageStarted(stage="generate"), waiting)
    assert "retries: rate_limited 7, timeout 2" in out
    summary = {"chunks": 212, "done": 212, "failed": 0, "failures_by_reason": {}}
    out = render(waiting, StageFinished(stage="generate", seconds=3.0, summary=summary))
    assert "212/212" in out and "retries: rate_limited 7, timeout 2" in out


def test_generate_bar_counts_failed_chunks_by_reason() -> None:
    summary = {
        "chunks": 180,
        "done": 158,
        "failed": 22,
        "failures_by_reason": {"malformed_json": 10, "timeout": 12},
    }
    out = render(StageFinished(stage="generate", seconds=3.0, summary=summary))
    assert "158/180" in out and "22 failed (timeout 12, malformed_json 10)" in out

    from ragtune.engine.generate.base import GenerationSummary
    from ragtune.engine.render import generation_failures

    assert generation_failures(GenerationSummary.from_dict(summary)) == (
        "generate: 22 of 180 chunks failed (timeout 12, malformed_json 10); "
        "the next run retries them"
    )
    assert generation_failures(GenerationSummary.from_dict({"chunks": 3, "failed": 0})) == ""


def llm_config(tmp_path: Path, url: str, minilm: Path, **generation) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir(exist_ok=True)
    for name in ("forklift", "reefer", "invoice", "dock"):
        (docs / f"{name}.md").write_text(
            f"# {name.title()}\n\n"
            + " ".join(f"The {name} rule {i} asks for {i + 2} checks." for i in range(6))
        )
    path = tmp_path / "llm.toml"
    data = {
        "run": {"name": "gen"},
        "sources": {"paths": ["docs"]},
        "chunking": {"max_tokens": 64, "overlap_tokens": 0, "min_tokens": 4},
        "embedder": {"base_model": str(minilm)},
        "generation": {
            "generator": "litellm",
            **generation,
            "llm": {
                "model": "openai/fake",
                "api_base": url,
                "max_retries": 0,
                "timeout": 5.0,
                "dedup_threshold": 1.0,
            },
        },
    }
    import tomli_w

    path.write_text(tomli_w.dumps(data))
    return path


def fail_first(n: int):
    """The first ``n`` requests get a 500; with max_retries=0 those chunks fail."""
    counter = itertools.count()
    return lambda attempt, body: "500" if next(counter) < n else None


def test_run_shows_generation_failures_by_reason(
    tmp_path: Path, minilm_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeLlmServer(fault=fail_first(2)) as server:
        path = llm_config(tmp_path, server.url, minilm_path, max_failed_share=0.9)
        assert main(["run", str(path), "--stages", "ingest,generate"]) == 0
    err = said(capsys)
    state = json.loads((tmp_path / "runs" / "gen" / ".state" / "generate.json").read_text())
    chunks = state["summary"]["chunks"]
    assert state["summary"]["failed"] == 2 and chunks > 2
    assert f"generate: 2 of {chunks} chunks failed (server_error 2); the next run retries them" in (
        err
    )
    assert f"{chunks - 2}/{chunks} chunks 2 failed (server_error 2)" in err


def test_run_over_the_failure_threshold_exits_non_zero_naming_generate(
    tmp_path: Path, minilm_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeLlmServer(fault=fail_first(1000)) as server:
        path = llm_config(tmp_path, server.url, minilm_path, max_failed_share=0.1)
        assert main(["run", str(path), "--stages", "ingest,generate"]) == EXIT_CODES["error"]
    err = said(capsys)
    assert "failed in stage generate:" in err and "generation.max_failed_share" in err
    assert "server_error" in err


# -- flags after the command, and where a bad value came from


@pytest.mark.parametrize("before", [True, False])
def test_debug_works_before_and_after_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], before: bool
) -> None:
    """The hint says "rerun with --debug": `ragtune status X --debug` shows the traceback."""
    missing = str(tmp_path / "gone")
    argv = ["--debug", "status", missing] if before else ["status", missing, "--debug"]
    with pytest.raises(InputError, match="no such workspace"):
        main(argv)
    assert main(["status", missing]) == BAD_INPUT


def test_run_accepts_debug_after_its_arguments(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError, match="invalid value"):
        main(["run", str(config), "--stages", "nope", "--debug"])


@pytest.mark.parametrize(
    ("item", "key"),
    [
        ("nosuch.key=1", "nosuch"),
        ("embedder.epoch=2", "embedder.epoch"),
        ("embedder.epochs=-1", "embedder.epochs"),
    ],
)
def test_a_bad_set_item_is_blamed_on_set_not_on_the_file(
    config: Path, capsys: pytest.CaptureFixture[str], item: str, key: str
) -> None:
    assert main(["run", str(config), "--set", item]) == BAD_CONFIG
    err = said(capsys)
    assert f"--set {item} [{key}]" in err
    assert str(config) not in err
    assert not (config.parent / "runs").exists()


def test_a_bad_key_in_the_file_is_still_blamed_on_the_file(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config.write_text(config.read_text() + "[embedder]\nepoch = 2\n")
    assert main(["run", str(config), "--set", "embedder.epochs=2"]) == BAD_CONFIG
    err = said(capsys)
    assert f"{config} [embedder.epoch]" in err and "did you mean 'epochs'" in err


@pytest.mark.parametrize(
    "model", ["runs/gone/models/embedder", "./my-model", "/nonexistent/ragtune/model", "~/nope/m"]
)
def test_eval_of_a_local_model_path_that_is_not_there(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch, model: str
) -> None:
    """Named at once (exit 3), before any data is read or the Hub is asked for it by name."""
    monkeypatch.chdir(tmp_path)
    assert main(["eval", model, str(tmp_path / "no-data")]) == BAD_INPUT
    err = said(capsys)
    assert f"{model}: no model folder at this path" in err and "organisation/model" in err


def test_eval_of_a_path_under_an_existing_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    """``models/embedder`` reads like a Hub name, but ``models/`` is a folder right here."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    assert main(["eval", "models/embedder", "data"]) == BAD_INPUT
    assert "models/embedder: no model folder at this path" in said(capsys)


# -- API keys are never repeated

SECRET = "sk-live-Zq8Lr2Vt6Yw1Xc4Bn7Mk0Pa3Sd5Fg9Hj"


@pytest.mark.parametrize(
    ("llm", "key"),
    [
        (f'api_key_env = "{SECRET}"', "generation.llm.api_key_env"),
        ('api_key_env = "hf_Zq8Lr2Vt6Yw1Xc4Bn7Mk0Pa3Sd5"', "generation.llm.api_key_env"),
        (f'api_key = "{SECRET}"', "generation.llm.api_key"),
    ],
)
def test_a_key_in_the_config_is_refused_and_never_written_or_shown(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], llm: str, key: str
) -> None:
    """As the wizard starts a run (a child process, its output in run.log) and as a user
    types it: exit 2 naming the setting, and the key in no file, log or message."""
    import subprocess
    import sys

    secret = llm.split('"')[1]
    config.write_text(
        config.read_text()
        + f'[generation]\ngenerator = "litellm"\n[generation.llm]\nmodel = "openai/x"\n{llm}\n'
    )
    assert main(["run", str(config)]) == BAD_CONFIG
    err = said(capsys)
    assert f"[{key}]" in err and "not shown: it looks like an API key" in err
    assert secret not in err
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        child = subprocess.run(
            [sys.executable, "-m", "ragtune.engine", "run", str(config), "--quiet"],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[2],
        )
    assert child.returncode == BAD_CONFIG
    assert key in log.read_text()
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p != config]
    assert log in written
    for path in written:
        assert secret not in path.read_text(errors="replace"), path
    assert not (tmp_path / "runs").exists()


def test_api_key_env_names_a_variable(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(config), "--set", 'generation.llm.api_key_env="MY KEY"']) == BAD_CONFIG
    err = said(capsys)
    assert "generation.llm.api_key_env" in err and "'MY KEY'" in err
    assert "NAME of the environment variable" in err
    assert main(["run", str(config), "--set", f"generation.llm.api_key_env={SECRET}"]) == BAD_CONFIG
    err = said(capsys)
    assert "--set generation.llm.api_key_env=" in err and SECRET not in err
    assert "not shown: it looks like an API key" in err


# -- sampling writes to the workspace, so it takes the lock

HOLDER = (
    "import sys; from pathlib import Path; from ragtune.engine.core.workspace import Workspace\n"
    "with Workspace(Path(sys.argv[1])).lock():\n"
    "    print('held', flush=True); sys.stdin.read()\n"
)


def files_of(root: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else b"")
        for p in sorted(root.rglob("*"))
    }


def test_sampling_during_a_run_is_refused_and_writes_nothing(
    tmp_path: Path, minilm_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The run holds the lock; `generate --sample` would append to generated.jsonl and pay
    for calls the run makes again. It is refused, names the run's pid, and sends no call."""
    import subprocess
    import sys

    with FakeLlmServer() as server:
        path = llm_config(tmp_path, server.url, minilm_path)
        assert main(["run", str(path), "--stages", "ingest"]) == 0
        root = tmp_path / "runs" / "gen"
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(root)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
            before = files_of(root)
            capsys.readouterr()
            assert main(["generate", str(path), "--sample", "4"]) == EXIT_CODES["error"]
            err = said(capsys)
            assert f"cannot draw sample rows now: another ragtune process (pid {holder.pid})" in (
                err
            )
            assert "wait for it, stop it" in err
            assert files_of(root) == before
            assert not server.requests
        finally:
            holder.communicate("")
        # Once the run is over, sampling works and its calls are kept for the full run.
        assert main(["generate", str(path), "--sample", "4", "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        assert len(rows) == 4 and server.requests
        assert (root / "generated.jsonl").is_file()


def test_a_sample_after_a_chunking_change_comes_from_the_new_chunks(
    config: Path, minilm_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI sampled the old chunks until a full run re-chunked; the wizard did not."""
    from ragtune.engine.core.records import read_chunks

    docs = config.parent / "docs"
    (docs / "a.md").write_text(
        "# Batteries\n\n"
        + " ".join(f"Forklift battery {i} is charged in bay {i + 3} overnight." for i in range(40))
    )
    config.write_text(
        config.read_text()
        + f'[embedder]\nbase_model = "{minilm_path}"\n'
        + "[chunking]\nmax_tokens = 200\noverlap_tokens = 0\nmin_tokens = 4\n"
    )
    assert main(["generate", str(config), "--sample", "3", "--json"]) == 0
    root = config.parent / "runs" / "probe"
    old = {c.chunk_id for c in read_chunks(root / "chunks.parquet")}
    assert {r["chunk_id"] for r in json.loads(capsys.readouterr().out)} <= old

    argv = ["generate", str(config), "--sample", "3", "--json", "--set", "chunking.max_tokens=48"]
    assert main(argv) == 0
    new = {c.chunk_id for c in read_chunks(root / "chunks.parquet")}
    assert new != old and len(new) > len(old)
    assert {r["chunk_id"] for r in json.loads(capsys.readouterr().out)} <= new
