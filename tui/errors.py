"""Turns exceptions from workers into one readable line with the fix, for notifications."""

from __future__ import annotations

from ragtune.engine.core.errors import RagtuneError


def friendly(error: BaseException | None) -> str:
    if error is None:
        return "unknown error"
    if isinstance(error, RagtuneError):
        return str(error)
    if isinstance(error, (ImportError, AttributeError)) and "engine" in str(error):
        return f"this step needs an engine feature that is not installed: {error}"
    if isinstance(error, FileNotFoundError):
        return f"file not found: {error.filename or error}"
    return f"{type(error).__name__}: {error}"
