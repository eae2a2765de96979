"""One resilient LLM call through litellm: limits, retries with backoff, timeouts, JSON repair.

Everything a provider can throw at a long run is handled here so the generator
only sees "parsed value" or "failed, with this reason": 429s (honouring
``Retry-After`` and pausing every caller, not just the one that hit it), 5xx,
timeouts, dropped connections and malformed JSON are retried with exponential
backoff and jitter; auth errors and unknown models stop the run, since every
later call would fail the same way. The API key lives only in this object's
memory and is scrubbed from every error message it passes on.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ragtune.engine.config.llm import LlmConfig
from ragtune.engine.core.errors import ConfigError, OfflineError, RagtuneError
from ragtune.engine.generate.llm_parse import MalformedReply, extract_json

# Without this litellm fetches its price map from GitHub at import; we must stay offline.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

NO_KEY = "sk-no-key-required"
FATAL_REASONS = ("auth", "not_found")


def _deadline(seconds: float) -> Any:
    """A backstop in case a provider ignores litellm's timeout (``asyncio.timeout`` on 3.11+)."""
    if hasattr(asyncio, "timeout"):
        return asyncio.timeout(seconds)
    return _NoDeadline()


class _NoDeadline:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


def import_litellm() -> Any:
    """litellm, imported late (it takes seconds) and quiet (no banner on every error)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    return litellm


# Where a key typed into the wizard travels to the run's child process when the config
# names no variable of its own; users may set it too.
KEY_VARIABLE = "RAGTUNE_LLM_API_KEY"


def child_key_variable(cfg: LlmConfig) -> str:
    return cfg.api_key_env or KEY_VARIABLE


def resolve_api_key(cfg: LlmConfig, api_key: str | None = None) -> str | None:
    """The key typed in (kept in memory) or read from the named variable (else from
    ``RAGTUNE_LLM_API_KEY``); never from a file."""
    if api_key:
        return api_key
    if not cfg.api_key_env:
        return os.environ.get(KEY_VARIABLE) or None
    value = os.environ.get(cfg.api_key_env, "")
    if not value:
        raise RagtuneError(
            f"the environment variable {cfg.api_key_env} is empty or not set",
            where="generation.llm.api_key_env",
            hint=f"export {cfg.api_key_env}=... before the run, or type the key in the wizard",
        )
    return value


def redact(text: str, secret: str | None) -> str:
    if secret and len(secret) >= 4:
        text = text.replace(secret, "***")
    return text


def json_mode_for(cfg: LlmConfig, model: str) -> str:
    """schema where litellm says the provider takes a JSON schema, else JSON mode, else prompt."""
    if cfg.json_mode != "auto":
        return cfg.json_mode
    litellm = import_litellm()
    try:
        if litellm.supports_response_schema(model=model):
            return "schema"
    except Exception:
        pass
    try:
        provider = litellm.get_llm_provider(model)[1]
        params = litellm.get_supported_openai_params(model=model, custom_llm_provider=provider)
        if params and "response_format" in params:
            return "object"
    except Exception:
        pass
    return "prompt"


def retry_after_seconds(exc: BaseException) -> float | None:
    headers = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
    if not headers:
        return None
    raw = headers.get("retry-after") or headers.get("Retry-After")
    if raw is None:
        ms = headers.get("retry-after-ms")
        return float(ms) / 1000 if ms else None
    try:
        return max(0.0, float(raw))
    except ValueError:
        parsed = email.utils.parsedate_tz(raw)
        return max(0.0, email.utils.mktime_tz(parsed) - time.time()) if parsed else None


def classify(exc: BaseException) -> tuple[str, bool]:
    """(reason, retryable) for an exception raised by a call."""
    litellm = import_litellm()
    name = type(exc).__name__
    text = str(exc).lower()
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError, litellm.Timeout)):
        return "timeout", True
    if isinstance(exc, litellm.RateLimitError):
        return "rate_limited", True
    # PermissionDeniedError is newer than litellm 1.60, the oldest release we allow.
    denied = getattr(litellm, "PermissionDeniedError", litellm.AuthenticationError)
    if isinstance(exc, (litellm.AuthenticationError, denied)):
        return "auth", False
    if isinstance(exc, litellm.NotFoundError):
        return "not_found", False
    if isinstance(exc, litellm.APIConnectionError) or "connection error" in text:
        return "connection", True
    if isinstance(exc, litellm.ContextWindowExceededError):
        return "context_window", False
    if isinstance(exc, litellm.BadRequestError):
        return "bad_request", False
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and status >= 500:
        return "server_error", True
    if isinstance(exc, (litellm.InternalServerError, litellm.ServiceUnavailableError)):
        return "server_error", True
    if isinstance(exc, litellm.APIError):
        return "api_error", True
    return f"error:{name}", False


@dataclass
class CallResult:
    ok: bool
    value: Any = None
    reason: str = ""
    error: str = ""
    attempts: int = 0
    usage: dict[str, int] = field(default_factory=dict)
    cost_usd: float | None = None


class RateLimiter:
    """A token bucket refilled per minute, holding one second's worth, shared by all calls."""

    def __init__(self, per_minute: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)
        self.level = self.capacity
        self.updated = time.monotonic()
        self._lock: asyncio.Lock | None = None

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now

    async def acquire(self, amount: float = 1.0) -> None:
        if self.rate <= 0:
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        amount = min(amount, self.capacity)
        async with self._lock:
            while True:
                self._refill()
                if self.level >= amount:
                    self.level -= amount
                    return
                await asyncio.sleep((amount - self.level) / self.rate)

    def consume(self, amount: float) -> None:
        """Correct an estimate once the real usage is known (may go negative: callers then wait)."""
        if self.rate > 0:
            self._refill()
            self.level -= amount


@dataclass
class ClientStats:
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    cost_known: bool = True
    retries_by_reason: Counter = field(default_factory=Counter)


class LlmClient:
    """Makes calls for one model under the run's shared limits."""

    def __init__(
        self,
        cfg: LlmConfig,
        *,
        api_key: str | None = None,
        model: str | None = None,
        cancel: threading.Event | None = None,
        semaphore: asyncio.Semaphore | None = None,
        limiters: tuple[RateLimiter, RateLimiter] | None = None,
        stats: ClientStats | None = None,
    ) -> None:
        self.cfg = cfg
        self.model = model or cfg.model
        if not self.model:
            raise ConfigError("generation.llm.model", self.model, "a litellm model string")
        self._key = api_key if api_key else (NO_KEY if cfg.api_base else None)
        self.cancel = cancel
        self.semaphore = semaphore or asyncio.Semaphore(cfg.concurrency)
        self.rpm, self.tpm = limiters or (
            RateLimiter(cfg.requests_per_minute),
            RateLimiter(cfg.tokens_per_minute),
        )
        self.stats = stats or ClientStats()
        self.mode = json_mode_for(cfg, self.model)
        self.fatal: RagtuneError | None = None
        self._cooldown_until = 0.0
        self._rng = random.Random()
        self._litellm = import_litellm()

    def redact(self, text: str) -> str:
        return redact(text, self._key)

    def _kwargs(self, messages: list[dict[str, str]], schema: dict | None, name: str) -> dict:
        kw: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": self.cfg.temperature,
            "max_tokens": self.cfg.max_tokens,
            "timeout": self.cfg.timeout,
            "num_retries": 0,
            "max_retries": 0,
            "drop_params": True,
        }
        if self.cfg.api_base:
            kw["api_base"] = self.cfg.api_base
        if self._key:
            kw["api_key"] = self._key
        if schema is not None and self.mode == "schema":
            kw["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": schema, "strict": True},
            }
        elif schema is not None and self.mode == "object":
            kw["response_format"] = {"type": "json_object"}
        return kw

    def _backoff(self, attempt: int, reason: str, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after + self._rng.uniform(0, 0.1 + 0.1 * retry_after)
        if reason == "malformed_json":
            return self._rng.uniform(0, 0.2)
        delay = min(30.0, 0.5 * 2**attempt)
        return delay * self._rng.uniform(0.5, 1.0)

    async def _wait_cooldown(self) -> None:
        while True:
            wait = self._cooldown_until - time.monotonic()
            if wait <= 0:
                return
            await asyncio.sleep(wait)

    def _record_usage(self, response: Any) -> tuple[dict[str, int], float | None]:
        usage = getattr(response, "usage", None)
        prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion = int(getattr(usage, "completion_tokens", 0) or 0)
        cost = None
        hidden = getattr(response, "_hidden_params", None) or {}
        if hidden.get("response_cost") is not None:
            cost = float(hidden["response_cost"])
        self.stats.calls += 1
        self.stats.input_tokens += prompt
        self.stats.output_tokens += completion
        if cost is None:
            self.stats.cost_known = False
        else:
            self.stats.cost_usd += cost
        return {"prompt_tokens": prompt, "completion_tokens": completion}, cost

    async def call(
        self,
        messages: list[dict[str, str]],
        parse: Callable[[Any], Any],
        *,
        schema: dict | None = None,
        name: str = "reply",
        raw_text: bool = False,
    ) -> CallResult:
        """Call until ``parse(json)`` (or ``parse(text)`` with ``raw_text``) succeeds or retries run out."""
        est_in = sum(len(m["content"]) for m in messages) // 4 + 8
        est_total = est_in + min(self.cfg.max_tokens, 512)
        usage_total: dict[str, int] = {"prompt_tokens": 0, "completion_tokens": 0}
        cost_total: float | None = 0.0
        reason, error = "", ""
        attempts = 0
        for attempt in range(self.cfg.max_retries + 1):
            if self.fatal is not None or (self.cancel is not None and self.cancel.is_set()):
                return CallResult(
                    False, reason=reason or "cancelled", error=error, attempts=attempts
                )
            await self._wait_cooldown()
            await self.rpm.acquire(1)
            await self.tpm.acquire(est_total)
            retry_after = None
            attempts += 1
            async with self.semaphore:
                try:
                    async with _deadline(self.cfg.timeout + 5):
                        response = await self._litellm.acompletion(
                            **self._kwargs(messages, schema, name)
                        )
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    response = None
                    reason, retryable = classify(exc)
                    error = self.redact(
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    )
                    if (
                        reason == "bad_request"
                        and self.mode == "schema"
                        and "response_format" in str(exc)
                    ):
                        self.mode = "object"
                        retryable = True
                    if reason == "rate_limited":
                        retry_after = retry_after_seconds(exc)
                        pause = retry_after if retry_after is not None else 1.0
                        self._cooldown_until = max(self._cooldown_until, time.monotonic() + pause)
                    if reason in FATAL_REASONS:
                        self.fatal = fatal_error(reason, error, self.model, self.cfg)
                    if not retryable:
                        self.tpm.consume(-est_total)
                        return CallResult(False, reason=reason, error=error, attempts=attempts)
            if response is not None:
                usage, cost = self._record_usage(response)
                for k, v in usage.items():
                    usage_total[k] += v
                cost_total = None if cost is None or cost_total is None else cost_total + cost
                self.tpm.consume(sum(usage.values()) - est_total)
                content = response.choices[0].message.content or ""
                try:
                    value = parse(content if raw_text else extract_json(content))
                    return CallResult(
                        True, value, attempts=attempts, usage=usage_total, cost_usd=cost_total
                    )
                except MalformedReply as exc:
                    reason, error = "malformed_json", str(exc)
            if attempt < self.cfg.max_retries:
                self.stats.retries_by_reason[reason] += 1
                await asyncio.sleep(self._backoff(attempt, reason, retry_after))
        return CallResult(
            False,
            reason=reason,
            error=error,
            attempts=attempts,
            usage=usage_total,
            cost_usd=cost_total,
        )


def fatal_error(reason: str, error: str, model: str, cfg: LlmConfig) -> RagtuneError:
    if reason == "auth":
        env = cfg.api_key_env or "the key variable"
        return RagtuneError(
            f"the provider rejected the API key for {model!r}: {error}",
            where="generation.llm.api_key_env",
            hint=f"check {env} holds a valid key for this provider",
        )
    return RagtuneError(
        f"model {model!r} is not known to the provider: {error}",
        where="generation.llm.model",
        hint="check the model name (litellm form provider/model) and api_base",
    )


def connection_error(cfg: LlmConfig, error: str) -> OfflineError:
    where = cfg.api_base or "the provider"
    return OfflineError(
        f"cannot reach {where}: {error}",
        where="generation.llm.api_base",
        hint="start the server or check the URL and network (ragtune is offline-first: "
        "the LLM-free generator needs no network)",
    )


def run_sync(coro: Any) -> Any:
    """Run a coroutine from sync code, also when this thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="ragtune-llm")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
