"""Description-only runs: the LLM drafts the system prompt, then writes the passages to learn from.

For a team with no documents at hand (or none they may send to a provider),
a written description of the domain is enough to start: the drafted system
prompt is saved as ``prompts/system.md`` (edit it, or regenerate it), and the
synthetic passages become ordinary chunks that the rest of the pipeline treats
like any others. Passage calls are cached in ``synthetic.jsonl`` so a restart
does not pay for them twice.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading

from ragtune.engine.config import RunConfig
from ragtune.engine.config.llm import LlmConfig
from ragtune.engine.core.errors import Cancelled, RagtuneError
from ragtune.engine.core.events import Emitter
from ragtune.engine.core.records import Chunk, Document, chunk_id_for
from ragtune.engine.core.workspace import Workspace
from ragtune.engine.generate.llm_client import LlmClient, resolve_api_key, run_sync
from ragtune.engine.generate.llm_parse import MalformedReply, list_schema, strings_from_reply
from ragtune.engine.generate.llm_prompts import PROMPT_FILES, Prompts, render, write_prompt
from ragtune.engine.generate.rows import (
    CallRecord,
    GeneratedRow,
    RecordWriter,
    latest_records,
    make_key,
)

SYNTHETIC_SOURCE = "synthetic"
_LEAD_IN = re.compile(r"^\s*(?:sure|okay|certainly)?[!,.\s]*here(?:'s| is)[^:\n]*:\s*\n", re.I)


def _clean_prompt(text: str) -> str:
    text = text.strip()
    fenced = re.fullmatch(r"```\w*\s*\n(.*?)\n?```", text, re.S)
    if fenced:
        text = fenced.group(1).strip()
    text = _LEAD_IN.sub("", text).strip()
    if len(text.split()) < 5:
        raise MalformedReply("the drafted system prompt is empty or too short")
    return text


def draft_system_prompt(
    description: str,
    llm_cfg: LlmConfig,
    api_key: str | None = None,
    template: str | None = None,
) -> str:
    """A system prompt for the domain, written by the model from the user's description."""
    if not description.strip():
        raise RagtuneError(
            "there is no description to draft a system prompt from",
            where="sources.description",
            hint="describe the domain: who searches, what the documents are, typical questions",
        )
    key = resolve_api_key(llm_cfg, api_key)
    user = render(template or PROMPT_FILES["draft_system"][1], description=description.strip())

    async def go() -> str:
        client = LlmClient(llm_cfg, api_key=key)
        result = await client.call(
            [{"role": "user", "content": user}], _clean_prompt, raw_text=True, name="system"
        )
        if client.fatal is not None:
            raise client.fatal
        if not result.ok:
            raise RagtuneError(
                f"could not draft the system prompt ({result.reason}: {result.error})",
                where="generation.llm",
                hint="check generation.llm (model, api_base, the key's variable): the wizard's LLM step tests the connection, `ragtune generate CONFIG --sample 2` makes one small call; or write prompts/system.md by hand",
            )
        return result.value

    return run_sync(go())


def ensure_system_prompt(
    cfg: RunConfig, ws: Workspace, api_key: str | None = None, *, regenerate: bool = False
) -> str:
    """The workspace system prompt; in description mode drafted once (or again on request)."""
    path = ws.prompts_dir / PROMPT_FILES["system"][0]
    marker = ws.prompts_dir / ".system_drafted"
    prompts = Prompts.load(ws.prompts_dir)
    description = cfg.sources.description
    if description and (regenerate or not marker.exists()):
        text = draft_system_prompt(
            description, cfg.generation.llm, api_key=api_key, template=prompts.draft_system
        )
        write_prompt(ws.prompts_dir, "system", text)
        marker.write_text(make_key(description, text), encoding="utf-8")
    return path.read_text(encoding="utf-8")


def synthesize_documents(
    cfg: RunConfig,
    ws: Workspace,
    events: Emitter | None = None,
    *,
    cancel: threading.Event | None = None,
    api_key: str | None = None,
) -> list[Document]:
    """Synthetic passages from ``sources.description``, one ``Document`` each."""
    llm = cfg.generation.llm
    events = events or Emitter()
    key = resolve_api_key(llm, api_key)
    system = ensure_system_prompt(cfg, ws, api_key=key)
    prompts = Prompts.load(ws.prompts_dir)
    per_call = llm.passages_per_call
    n_calls = math.ceil(llm.synthetic_passages / per_call)
    path = ws.root / "synthetic.jsonl"
    cache = latest_records(path)
    params = {"temperature": llm.temperature, "max_tokens": llm.max_tokens}

    def messages(batch: int, n: int) -> list[dict[str, str]]:
        user = render(
            prompts.passages, description=cfg.sources.description.strip(), n=n, batch=batch + 1
        )
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    async def go() -> list[list[str]]:
        client = LlmClient(llm, api_key=key, cancel=cancel)
        out: list[list[str]] = [[] for _ in range(n_calls)]
        done = 0
        with RecordWriter(path) as writer:

            async def one(batch: int) -> None:
                nonlocal done
                n = min(per_call, llm.synthetic_passages - batch * per_call)
                msgs = messages(batch, n)
                rec_key = make_key(
                    "passages", "\n".join(m["content"] for m in msgs), llm.model, params
                )
                hit = cache.get(rec_key)
                if hit is not None and hit.status == "ok":
                    out[batch] = [r.context for r in hit.rows]
                else:
                    result = await client.call(
                        msgs,
                        lambda d: strings_from_reply(d, "passages"),
                        schema=list_schema("passages"),
                        name="passages",
                    )
                    if result.reason == "cancelled":
                        return
                    texts = [t for t in (result.value or []) if len(t.split()) >= 8]
                    writer.write(
                        CallRecord(
                            key=rec_key,
                            chunk_id="",
                            status="ok" if result.ok else "failed",
                            generator="litellm:passages",
                            model=llm.model,
                            error="" if result.ok else f"{result.reason}: {result.error}",
                            usage=result.usage,
                            rows=[
                                GeneratedRow(
                                    chunk_id="",
                                    question="",
                                    context=t,
                                    source=SYNTHETIC_SOURCE,
                                    kind="passage",
                                )
                                for t in texts
                            ],
                        )
                    )
                    if not result.ok:
                        events.warning(
                            f"a passage batch failed: {result.reason}: {result.error}",
                            where=f"batch {batch + 1}",
                        )
                    out[batch] = texts
                done += 1
                events.progress(done, n_calls, unit="passage batches")

            await asyncio.gather(*(one(b) for b in range(n_calls)))
        if client.fatal is not None:
            raise client.fatal
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        return out

    batches = run_sync(go())
    docs: list[Document] = []
    seen: set[str] = set()
    for b, texts in enumerate(batches):
        for i, text in enumerate(texts):
            if text in seen:
                continue
            seen.add(text)
            docs.append(
                Document(
                    doc_id=f"synthetic-{b + 1:03d}-{i + 1:02d}",
                    text=text,
                    source=f"{SYNTHETIC_SOURCE}/batch-{b + 1:03d}",
                    title=f"synthetic passage {b + 1}.{i + 1}",
                )
            )
    if not docs:
        raise RagtuneError(
            "the model wrote no usable passages from the description",
            where="sources.description",
            hint="check the events for the reasons, or edit prompts/passages.md",
        )
    events.info(f"wrote {len(docs)} synthetic passages from the description")
    return docs


def documents_to_chunks(docs: list[Document]) -> list[Chunk]:
    """One chunk per passage: synthetic passages are written to chunk size already."""
    return [
        Chunk(
            chunk_id=chunk_id_for(d.source, d.text),
            doc_id=d.doc_id,
            text=d.text,
            source=d.source,
            title=d.title,
            n_tokens=len(d.text.split()),
        )
        for d in docs
    ]


def synthesize_chunks(
    cfg: RunConfig,
    ws: Workspace,
    events: Emitter | None = None,
    *,
    cancel: threading.Event | None = None,
    api_key: str | None = None,
) -> list[Chunk]:
    """Passages written by the LLM from the description; refused when the run is LLM-free.

    ``generator = "llm-free"`` promises no network and no cost, so a description-only
    run with it fails here, before any request, instead of calling the configured model.
    """
    if not cfg.generation.calls_llm:
        raise RagtuneError(
            "a description-only run needs an LLM to write passages, and the generator is "
            f"{cfg.generation.resolved}",
            where="generation.generator",
            hint="pick documents or a dataset in the Sources step, or set generation.generator "
            "to litellm (or auto) with generation.llm.model",
        )
    return documents_to_chunks(
        synthesize_documents(cfg, ws, events, cancel=cancel, api_key=api_key)
    )
