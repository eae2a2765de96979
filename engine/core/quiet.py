"""Environment that keeps libraries' own bars and notices out of the CLI's and wizard's output."""

from __future__ import annotations

import os

QUIET_ENVIRONMENT = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "TOKENIZERS_PARALLELISM": "false",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    # transformers 5 logs a load report (e.g. a reranker's fresh head) as a warning; the
    # engine says the same in its own events.
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    # tqdm bars would interleave with the progress drawn from engine events.
    "TQDM_DISABLE": "1",
}


def quiet_libraries() -> None:
    """Set before the libraries are imported: most read these once, at import."""
    for key, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
