"""The whole run as one typed config that round-trips to a documented TOML file."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import tomli_w

from ragtune.engine.config.base import Section, setting
from ragtune.engine.config.chunking import ChunkingConfig
from ragtune.engine.config.data import DataConfig
from ragtune.engine.config.deploy import DeployConfig
from ragtune.engine.config.distributed import DistributedConfig
from ragtune.engine.config.evaluation import EvalConfig
from ragtune.engine.config.export import ExportConfig
from ragtune.engine.config.generation import GenerationConfig, LlmFreeConfig
from ragtune.engine.config.llm import LlmConfig
from ragtune.engine.config.reranker import RerankerConfig
from ragtune.engine.config.retrieval import RetrievalConfig
from ragtune.engine.config.sources import SourcesConfig
from ragtune.engine.config.training import EmbedderConfig
from ragtune.engine.core.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "ChunkingConfig",
    "ConfigError",
    "DataConfig",
    "DistributedConfig",
    "EmbedderConfig",
    "EvalConfig",
    "ExportConfig",
    "GenerationConfig",
    "LlmConfig",
    "LlmFreeConfig",
    "RerankerConfig",
    "RetrievalConfig",
    "RunConfig",
    "RunSection",
    "SourcesConfig",
    "load_config",
]


@dataclass
class RunSection(Section):
    name: str = setting("run", help="run name; the workspace folder is named after it")
    workspace: str = setting(
        "", help="workspace folder; empty = runs/<name> beside the config file"
    )
    seed: int = setting(42, help="global seed")


@dataclass
class RunConfig(Section):
    run: RunSection = field(default_factory=RunSection)
    sources: SourcesConfig = field(default_factory=SourcesConfig)
    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    data: DataConfig = field(default_factory=DataConfig)
    embedder: EmbedderConfig = field(default_factory=EmbedderConfig)
    reranker: RerankerConfig = field(default_factory=RerankerConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    deploy: DeployConfig = field(default_factory=DeployConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)

    def __post_init__(self) -> None:
        self.base_dir = Path.cwd()
        super().__post_init__()

    @classmethod
    def from_dict(cls, data: dict[str, Any], prefix: str = "") -> RunConfig:
        obj = super().from_dict(data, prefix)
        obj.base_dir = Path.cwd()
        return obj

    def resolve(self, path: str | Path) -> Path:
        """Paths in a config are relative to the config file, so a run folder can move."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.base_dir / p).resolve()

    @property
    def workspace_dir(self) -> Path:
        if self.run.workspace:
            return self.resolve(self.run.workspace)
        return self.resolve(Path("runs") / self.run.name)

    def for_workspace(self, root: Path) -> RunConfig:
        """A copy whose paths are absolute and whose workspace is ``root``, for ``root/config.toml``.

        The copy replays the same run from inside the workspace, wherever it was started.
        """
        data = self.to_dict()
        src = data["sources"]
        src["paths"] = [str(self.resolve(p)) for p in self.sources.paths]
        if self.sources.dataset and self.resolve(self.sources.dataset).exists():
            src["dataset"] = str(self.resolve(self.sources.dataset))
        if self.eval.benchmark:
            data["eval"]["benchmark"] = str(self.resolve(self.eval.benchmark))
        data["run"]["workspace"] = "."
        copy = RunConfig.from_dict(data)
        copy.base_dir = Path(root).resolve()
        return copy

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(to_toml(self), encoding="utf-8")
        return path


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read a TOML config; ``overrides`` are ``section.key=value`` strings (TOML values)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError("config", str(path), "an existing TOML file (see `ragtune init`)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", str(path), f"valid TOML ({exc})") from None
    for item in overrides or []:
        apply_override(data, item)
    cfg = _from_dict_at(data, path)
    return cfg


def _from_dict_at(data: dict[str, Any], path: Path) -> RunConfig:
    try:
        cfg = RunConfig.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(exc.key, exc.value, exc.allowed, source=str(path)) from None
    cfg.base_dir = path.resolve().parent
    return cfg


def apply_override(data: dict[str, Any], item: str) -> None:
    if "=" not in item:
        raise ConfigError("--set", item, "section.key=value, e.g. embedder.epochs=2")
    key, raw = item.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    node = data
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def to_toml(cfg: Section) -> str:
    """A TOML file with every setting and its help as a comment, so the file documents itself."""
    lines: list[str] = []

    def emit(section: Section, name: str) -> None:
        lines.append(f"[{name}]")
        help_of = {row[0]: row[2] for row in type(section).describe()}
        nested: list[tuple[str, Section]] = []
        for f in fields(section):
            value = getattr(section, f.name)
            if is_dataclass(value):
                nested.append((f"{name}.{f.name}", value))
                continue
            if value is None:
                continue
            if help_of.get(f.name):
                lines.append(f"# {help_of[f.name]}")
            lines.append(tomli_w.dumps({f.name: value}).strip())
        lines.append("")
        for sub_name, sub in nested:
            emit(sub, sub_name)

    for f in fields(cfg):
        emit(getattr(cfg, f.name), f.name)
    return "\n".join(lines)
