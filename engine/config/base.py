"""The typed-section machinery behind every config: defaults, help, validation, dict round-trip."""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from typing import Any, TypeVar

from ragtune.engine.core.errors import ConfigError
from ragtune.engine.core.redact import Hidden, shown

S = TypeVar("S", bound="Section")


def setting(
    default: Any = MISSING,
    help: str = "",
    *,
    choices: tuple[Any, ...] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    default_factory: Any = MISSING,
    secret: bool = False,
    fingerprint: bool = True,
    before: Any = MISSING,
) -> Any:
    """A config field whose help text and limits live beside it, for the docs and the TUI.

    ``fingerprint=False`` marks a knob that changes speed or placement but not results
    (concurrency, device, batch size of encoding): changing it re-runs nothing.
    ``before``: the value a run made before this setting existed behaved as, when that is not
    its default; a stage recorded then counts as changed unless the setting holds it.
    """
    meta = {
        "help": help,
        "choices": choices,
        "minimum": minimum,
        "maximum": maximum,
        "secret": secret,
        "fingerprint": fingerprint,
    }
    if before is not MISSING:
        meta["before"] = before
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


def _invalid(key: str, value: Any, allowed: str) -> ConfigError:
    """The error for a bad value, which repeats the value unless it looks like an API key."""
    return ConfigError(key, shown(value), allowed)


def _unknown(key: str, value: Any, allowed: str) -> ConfigError:
    """An unknown key; a key pasted into the config (``api_key = "sk-…"``) is not repeated,
    and the fix says where a key goes instead."""
    if key.rsplit(".", 1)[-1].lower() in _KEY_NAMES or isinstance(shown(value), Hidden):
        return ConfigError(
            key,
            Hidden(),
            "no key or token in a config: export it in the shell (`export OPENAI_API_KEY=...`)"
            " and write the variable's NAME in generation.llm.api_key_env (the Hub token is "
            "read from $HF_TOKEN), or type the key in the wizard",
        )
    return ConfigError(key, value, f"a known key ({allowed})")


_KEY_NAMES = {"api_key", "apikey", "key", "token", "secret", "password"}


def _allowed(meta: typing.Mapping[str, Any]) -> str:
    if meta.get("choices"):
        return " | ".join(repr(c) for c in meta["choices"])
    lo, hi = meta.get("minimum"), meta.get("maximum")
    if lo is not None and hi is not None:
        return f"a number from {lo} to {hi}"
    if lo is not None:
        return f"a number >= {lo}"
    if hi is not None:
        return f"a number <= {hi}"
    return "see the docs"


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Accept what TOML gives (int for float, list for tuple) and reject the rest by key."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(exc)
        raise _invalid(key, value, " or ".join(_type_name(a) for a in args))
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _invalid(key, value, f"a list of {_type_name(args[0]) if args else 'values'}")
        inner = args[0] if args else Any
        items = [_coerce(v, inner, key) if inner is not Any else v for v in value]
        return items if origin is list else tuple(items)
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise _invalid(key, value, "a table")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _invalid(key, value, "true or false")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _invalid(key, value, "a number")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise _invalid(key, value, "a whole number")
    if tp is str:
        if isinstance(value, str):
            return value
        raise _invalid(key, value, "a string")
    if isinstance(tp, type) and issubclass(tp, Section):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise _invalid(key, value, "a table")
        return tp.from_dict(value, prefix=key)
    return value


@dataclass
class Section:
    """Base of every config section; subclasses add ``setting`` fields and ``check``."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, prefix: str = "") -> None:
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            key = f"{prefix}{f.name}"
            value = getattr(self, f.name)
            value = _coerce(value, hints[f.name], key)
            object.__setattr__(self, f.name, value)
            meta = f.metadata
            if value is None:
                continue
            choices = meta.get("choices")
            if choices and value not in choices:
                raise _invalid(key, value, _allowed(meta))
            lo, hi = meta.get("minimum"), meta.get("maximum")
            numbers = value if isinstance(value, (list, tuple)) else [value]
            for v in numbers:
                if not isinstance(v, (int, float)) or isinstance(v, bool):
                    continue
                if (lo is not None and v < lo) or (hi is not None and v > hi):
                    raise _invalid(key, value, _allowed(meta))
        self.check()

    def check(self) -> None:
        """Cross-field rules; raise ``ConfigError`` naming the key."""

    @classmethod
    def from_dict(cls: type[S], data: dict[str, Any], prefix: str = "") -> S:
        known = {f.name: f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        dotted = f"{prefix}." if prefix else ""
        for key, value in data.items():
            if key not in known:
                close = difflib.get_close_matches(key, list(known), n=1)
                allowed = f"did you mean {close[0]!r}?" if close else ", ".join(known)
                raise _unknown(f"{dotted}{key}", value, allowed)
            kwargs[key] = value
        obj = cls.__new__(cls)
        for name, f in known.items():
            if name in kwargs:
                val = kwargs[name]
            elif f.default is not MISSING:
                val = f.default
            elif f.default_factory is not MISSING:
                val = f.default_factory()
            else:
                raise ConfigError(f"{dotted}{name}", None, "a value (this key is required)")
            object.__setattr__(obj, name, val)
        obj.validate(prefix=dotted)
        return obj

    def to_dict(self) -> dict[str, Any]:
        """Plain data for TOML; ``None`` values are left out since TOML has no null."""

        def clean(v: Any) -> Any:
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items() if x is not None}
            if isinstance(v, (list, tuple)):
                return [clean(x) for x in v]
            return v

        return clean(asdict(self))

    def inactive(self) -> set[str]:
        """Settings that the other values make irrelevant (GPL knobs under another loss):
        changing one of them then changes no result, so it re-runs nothing."""
        return set()

    def result_settings(self) -> dict[str, Any]:
        """The settings that change what this section's stage produces, for its fingerprint."""
        out: dict[str, Any] = {}
        skip = self.inactive()
        for f in fields(self):
            if not f.metadata.get("fingerprint", True) or f.name in skip:
                continue
            value = getattr(self, f.name)
            if isinstance(value, Section):
                out[f.name] = value.result_settings()
            else:
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def describe(cls) -> list[tuple[str, Any, str]]:
        """(name, default, help) rows, for ``ragtune config --explain`` and the TUI tooltips."""
        rows = []
        for f in fields(cls):
            default = f.default if f.default is not MISSING else None
            if f.default_factory is not MISSING:
                default = f.default_factory()
            if is_dataclass(default):
                continue
            help_text = f.metadata.get("help", "")
            allowed = _allowed(f.metadata)
            if allowed != "see the docs":
                help_text = f"{help_text} ({allowed})" if help_text else allowed
            rows.append((f.name, default, help_text))
        return rows
