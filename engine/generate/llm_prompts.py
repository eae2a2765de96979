"""The LLM generator's prompts: defaults, the editable files in the workspace, and rendering.

Prompts live as Markdown files in ``<workspace>/prompts/`` so a user can read
and edit exactly what the model is told; the files are created from the
defaults below on first use and never overwritten afterwards. Placeholders
are ``{name}``; other braces (JSON examples) are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ragtune.engine.config.llm import LlmConfig

DEFAULT_SYSTEM = """\
You write training data for a search engine over a team's internal documents.
Write the way the people who use these documents search: short, specific, in their words.
Use only what the passage says; never add outside knowledge.
"""

DEFAULT_QUERIES = """\
Here is a passage from the document "{title}" ({source}):

<passage>
{passage}
</passage>

Write {n_queries} search queries that this passage answers on its own, in varied styles:
{styles}
Each query must make sense without seeing the passage (name the subject; no "this passage",
no "the text"), must not copy a sentence from the passage, and must differ from the others.
{tasks}
{examples}Reply with JSON only, no commentary, in this shape:
{shape}
"""

DEFAULT_ANSWER = """\
<passage>
{passage}
</passage>

Answer each question below from the passage alone. If the passage does not answer a question,
reply for it exactly: "The passage does not answer this question." Do not use outside knowledge.

{questions}

Reply with JSON only: {{"answers": ["answer to question 1", ...]}} in the same order.
"""

DEFAULT_DRAFT_SYSTEM = """\
A team wants synthetic training data for a search engine over their documents. They describe
their domain like this:

<description>
{description}
</description>

Write the system prompt for an assistant that writes realistic search queries and passages for
this domain: who searches, what they look for, the vocabulary they use, and the rule to use only
the given passage. Reply with the system prompt text only.
"""

DEFAULT_PASSAGES = """\
<description>
{description}
</description>

Write {n} passages (batch {batch}) of the kind this team's documents contain: each 80 to 200 words,
self-contained, specific (names of procedures, numbers, roles, steps), each about a different
topic than the others. Vary the document type (policy, procedure, FAQ, report, manual).
Reply with JSON only: {{"passages": ["...", "..."]}}
"""

PROMPT_FILES = {
    "system": ("system.md", DEFAULT_SYSTEM),
    "queries": ("queries.md", DEFAULT_QUERIES),
    "answer": ("answer.md", DEFAULT_ANSWER),
    "draft_system": ("draft_system.md", DEFAULT_DRAFT_SYSTEM),
    "passages": ("passages.md", DEFAULT_PASSAGES),
}

STYLE_LINES = {
    "question": '- "question": a natural question a colleague would ask',
    "keyword": '- "keyword": a terse keyword search, 2 to 6 words, no question mark',
    "paraphrase": '- "paraphrase": a statement of the need in other words than the passage uses',
}

TASK_LINES = {
    "answer": (
        'For each query also give "answer": a grounded answer from the passage alone, or exactly '
        '"The passage does not answer this question." when it does not.'
    ),
    "hard_negative_query": (
        'Give "hard_negative_query": a query close in wording to the passage that the passage does '
        "NOT answer."
    ),
    "reranking_passages": (
        'Give "positive_passage": the passage rewritten in other words with the same facts, and '
        '"negative_passage": a passage of similar topic and wording that does not contain the answer.'
    ),
}

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{(\w+)\}")


def render(template: str, **values: object) -> str:
    """Fill ``{name}`` for known names only; ``{{``/``}}`` become single braces."""

    def sub(m: re.Match[str]) -> str:
        token = m.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        name = m.group(1)
        return str(values[name]) if name in values else token

    return _PLACEHOLDER.sub(sub, template)


@dataclass
class Prompts:
    system: str
    queries: str
    answer: str
    draft_system: str
    passages: str

    @classmethod
    def defaults(cls) -> Prompts:
        return cls(**{name: text for name, (_, text) in PROMPT_FILES.items()})

    @classmethod
    def load(cls, folder: Path) -> Prompts:
        """Read the workspace prompts, writing any missing file from its default first."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        texts = {}
        for name, (filename, default) in PROMPT_FILES.items():
            path = folder / filename
            if not path.exists():
                path.write_text(default, encoding="utf-8")
            texts[name] = path.read_text(encoding="utf-8")
        return cls(**texts)


def write_prompt(folder: Path, name: str, text: str) -> Path:
    filename = PROMPT_FILES[name][0]
    path = Path(folder) / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text.strip() + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def styles_for(n_queries: int) -> list[str]:
    order = ["question", "keyword", "paraphrase"]
    return [order[i % len(order)] for i in range(n_queries)]


def reply_shape(cfg: LlmConfig, with_answers: bool) -> str:
    item = '{"style": "question", "query": "..."' + (', "answer": "..."' if with_answers else "")
    parts = [f'"queries": [{item}}}, ...]']
    if "hard_negative_query" in cfg.tasks:
        parts.append('"hard_negative_query": "..."')
    if "reranking_passages" in cfg.tasks:
        parts.append('"positive_passage": "...", "negative_passage": "..."')
    return "{" + ", ".join(parts) + "}"


def examples_block(examples: Sequence[str]) -> str:
    """Queries the user accepted or edited in the sample review, shown as the style to follow."""
    if not examples:
        return ""
    listed = "\n".join(f"- {q}" for q in examples)
    return (
        "Queries our team approved for other passages (follow their style and vocabulary, "
        f"not their topic):\n{listed}\n"
    )


def queries_message(
    prompts: Prompts,
    cfg: LlmConfig,
    passage: str,
    *,
    title: str = "",
    source: str = "",
    with_answers: bool,
    examples: Sequence[str] = (),
) -> str:
    styles = sorted(set(styles_for(cfg.queries_per_chunk)), key=list(STYLE_LINES).index)
    tasks = [TASK_LINES["answer"]] if with_answers else []
    tasks += [
        TASK_LINES[t] for t in ("hard_negative_query", "reranking_passages") if t in cfg.tasks
    ]
    block = examples_block(examples)
    template = prompts.queries
    if block and "{examples}" not in template:
        # A prompt file written before few-shot examples existed: put them before the reply rule.
        template = template.rstrip("\n") + "\n\n{examples}"
    return render(
        template,
        examples=block,
        passage=passage,
        title=title or "untitled",
        source=source or "unknown",
        n_queries=cfg.queries_per_chunk,
        styles="\n".join(STYLE_LINES[s] for s in styles),
        tasks="\n".join(tasks),
        shape=reply_shape(cfg, with_answers),
    )


def answer_message(prompts: Prompts, passage: str, questions: list[str]) -> str:
    listed = "\n".join(f"{i + 1}. <question>{q}</question>" for i, q in enumerate(questions))
    return render(prompts.answer, passage=passage, questions=listed)
