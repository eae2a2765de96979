"""ragtune's engine: every stage from documents to evaluated models, with no UI attached."""

from __future__ import annotations

__version__ = "0.1.0"
