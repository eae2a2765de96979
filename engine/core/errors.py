"""Errors that carry what went wrong, where, and how to fix it."""

from __future__ import annotations


class RagtuneError(Exception):
    """An expected failure the user can act on; the CLI prints it without a traceback."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str = "", where: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.where = where

    def __str__(self) -> str:
        parts = [f"{self.where}: {self.message}" if self.where else self.message]
        if self.hint:
            parts.append(f"fix: {self.hint}")
        return "\n".join(parts)


class ConfigError(RagtuneError):
    """A setting has a value outside what is allowed; names the key so the user finds it."""

    exit_code = 2

    def __init__(self, key: str, value: object, allowed: str, *, source: str = "") -> None:
        where = f"{source} [{key}]" if source else key
        super().__init__(f"invalid value {value!r}", hint=f"allowed: {allowed}", where=where)
        self.key = key
        self.value = value
        self.allowed = allowed


class ConfigFileError(RagtuneError):
    """The config file itself is missing or unreadable (not one setting in it)."""

    exit_code = 2


class InputError(RagtuneError):
    """A source file or dataset cannot be used."""

    exit_code = 3


class OfflineError(RagtuneError):
    """A hub or API was needed but could not be reached."""

    exit_code = 4


class OutOfMemory(RagtuneError):
    """The GPU ran out of memory; the message names the batch in use, the hint what lowers it."""


class StageStopped(RagtuneError):
    """A stage that ran but stopped short of its goal (failed LLM calls past
    ``generation.max_failed_share``): it is recorded as incomplete, with ``summary``, before
    the run fails, so ``status`` says "incomplete" and the next run retries only what is left."""

    def __init__(self, message: str, *, summary: dict, hint: str = "", where: str = "") -> None:
        super().__init__(message, hint=hint, where=where)
        self.summary = summary


class Cancelled(RagtuneError):
    """The user asked to stop; work done so far is kept."""

    exit_code = 130

    def __init__(self, message: str = "cancelled; finished work is kept in the workspace") -> None:
        super().__init__(message)


EXIT_CODES: dict[str, int] = {
    "ok": 0,
    "error": RagtuneError.exit_code,
    "config": ConfigError.exit_code,
    "input": InputError.exit_code,
    "offline": OfflineError.exit_code,
    "cancelled": Cancelled.exit_code,
}
