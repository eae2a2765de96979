"""A one-call check that the configured model answers, with a message a user can act on."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace

from ragtune.engine.config.llm import LlmConfig
from ragtune.engine.core.errors import RagtuneError
from ragtune.engine.generate.llm_client import LlmClient, import_litellm, resolve_api_key, run_sync


@dataclass
class ConnectionResult:
    ok: bool
    message: str
    latency_s: float


def _message(reason: str, error: str, cfg: LlmConfig) -> str:
    where = cfg.api_base or "the provider"
    env = cfg.api_key_env or "the key variable (generation.llm.api_key_env)"
    return {
        "auth": f"the API key was rejected by {where}: check {env}. ({error})",
        "not_found": f"model {cfg.model!r} is unknown at {where}: check the name. ({error})",
        "connection": f"cannot reach {where}: is the server running and the URL right? ({error})",
        "timeout": f"no reply from {where} within {cfg.timeout:g} s ({error})",
        "rate_limited": f"{where} answered but is rate-limiting this key ({error})",
        "bad_request": f"{where} refused the request for {cfg.model!r} ({error})",
    }.get(reason, f"the call failed: {reason}: {error}")


_WARM = threading.Event()


def llm_ready() -> bool:
    """Whether litellm has finished importing, so a call costs only its network round trip.

    Not ``"litellm" in sys.modules``: a module is listed there from the start of its import.
    """
    return _WARM.is_set()


def warm_up() -> float:
    """Import litellm ahead of the first call; returns the seconds it took (0 when warm).

    The import is what made the first connection test slow (4 s on an idle machine, 11 s
    on a busy one; the call to a dead port itself takes 0.2 s), so a UI calls this in the
    background as soon as an LLM may be used.
    """
    if llm_ready():
        return 0.0
    start = time.monotonic()
    import_litellm()
    _WARM.set()
    return time.monotonic() - start


def test_connection(llm_cfg: LlmConfig, api_key: str | None = None) -> ConnectionResult:
    """Send one tiny request and report whether it worked, how long it took, and what to fix."""
    if not llm_cfg.model:
        return ConnectionResult(False, "no model set (generation.llm.model)", 0.0)
    try:
        key = resolve_api_key(llm_cfg, api_key)
    except RagtuneError as exc:
        return ConnectionResult(False, f"{exc.message}; fix: {exc.hint}", 0.0)
    cfg = replace(
        llm_cfg,
        max_retries=0,
        max_tokens=16,
        timeout=min(llm_cfg.timeout, 30.0),
        json_mode="prompt",
    )

    async def go() -> tuple[bool, str, float]:
        client = LlmClient(cfg, api_key=key)
        start = time.monotonic()
        result = await client.call(
            [{"role": "user", "content": "Reply with the word OK."}],
            lambda text: text,
            raw_text=True,
        )
        latency = time.monotonic() - start
        if result.ok:
            return True, f"{cfg.model} answered in {latency:.2f} s", latency
        return False, _message(result.reason, client.redact(result.error), cfg), latency

    ok, message, latency = run_sync(go())
    _WARM.set()
    return ConnectionResult(ok, message, round(latency, 3))


test_connection.__test__ = False  # type: ignore[attr-defined]
