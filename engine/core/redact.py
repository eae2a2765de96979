"""Telling API keys apart from other text, so that no error, event or log line repeats one.

A key pasted where a name belongs (``api_key_env``, an unknown ``api_key`` setting, a
``--set`` item) would otherwise travel into error messages, ``events.jsonl`` and
``run.log``; everything shown to a user or written to a workspace passes through here.
"""

from __future__ import annotations

import re
from typing import Any

# Providers' key prefixes (OpenAI/Anthropic/DeepSeek sk-, Hugging Face, Google, GitHub, Groq,
# xAI, Replicate, Perplexity, NVIDIA, AWS, Slack, GitLab).
KEY_PREFIXES = (
    "sk-",
    "sk_",
    "hf_",
    "AIza",
    "ghp_",
    "gho_",
    "ghs_",
    "github_pat_",
    "gsk_",
    "xai-",
    "r8_",
    "pplx-",
    "nvapi-",
    "AKIA",
    "xoxb-",
    "xoxp-",
    "glpat-",
)
SHOWN_INSTEAD = "***"
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]{15,}")


def looks_like_key(text: str) -> bool:
    """A provider prefix followed by more characters, or a long random-looking token.

    Names people give variables (``OPENAI_API_KEY``, ``MY_PROJECT_LLM_KEY_2024``) are words
    joined by ``_``; a key is one run of mixed letters and digits.
    """
    token = text.strip()
    if len(token) < 16 or not _TOKEN.fullmatch(token):
        return False
    if token.startswith(KEY_PREFIXES) and len(token) >= 20:
        return True
    if len(token) < 32:
        return False
    has_digit = any(c.isdigit() for c in token)
    has_letter = any(c.isalpha() for c in token)
    separators = sum(c in "_-" for c in token)
    return has_digit and has_letter and separators / len(token) < 0.1


def redact(text: str) -> str:
    """``text`` with every key-like token replaced by ``***``."""
    if len(text) < 16:
        return text
    return _TOKEN.sub(lambda m: SHOWN_INSTEAD if looks_like_key(m.group()) else m.group(), text)


class Hidden:
    """Stands in for a value that looks like a key, in an error that would print the value."""

    def __repr__(self) -> str:
        return "<not shown: it looks like an API key>"

    __str__ = __repr__


def shown(value: Any) -> Any:
    """``value``, or ``Hidden()`` when it is (or holds) text that looks like a key."""
    if isinstance(value, str):
        return Hidden() if redact(value) != value else value
    if isinstance(value, (list, tuple)):
        return Hidden() if any(isinstance(shown(v), Hidden) for v in value) else value
    if isinstance(value, dict):
        return Hidden() if any(isinstance(shown(v), Hidden) for v in value.values()) else value
    return value
