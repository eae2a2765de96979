"""Suite embeddings saved in the workspace per suite and model, so a later stage (deploy) or a
rerun of evaluate reads them instead of encoding the corpus again; ``ask`` reads a saved
corpus that is the workspace's chunks.

Each ``embeddings/<suite>-<model>`` keeps the judged queries' and the corpus's full-size float32
embeddings (two ``.npy``) and a sidecar ``.json`` with their fingerprint: the model's files,
its prompts, input length and inference dtype, and the suite's texts. A stale or missing set
is encoded again and overwritten; one written halfway is never read (the sidecar goes last).
``embeddings/corpus-<model>`` keeps a corpus alone, made by the train stage while it fitted the
rotation (the same model's passages, encoded once, read by evaluate and ``ask``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ragtune.engine.core.stages import digest
from ragtune.engine.evaluate.ir import SuiteEmbeddings, encode_suite, judged_queries

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from ragtune.engine.core.events import Emitter
    from ragtune.engine.core.workspace import Workspace
    from ragtune.engine.evaluate.beir import IRData

FOLDER = "embeddings"
FORMAT = 1


def model_identity(name: str) -> Any:
    """A folder model by its modules' weight and config files' names, sizes and mtimes (a
    retrained or replaced model is a new identity; a workspace moved with its mtimes kept is
    not, nor is a model that export put the BM25 index and retrieval.json beside); a Hub name
    as itself."""
    from ragtune.engine.retrieval.export import RETRIEVAL_FILE

    path = Path(name)
    if not path.is_dir():
        return name
    folders = {path}
    try:
        modules = json.loads((path / "modules.json").read_text(encoding="utf-8"))
        folders |= {path / m["path"] for m in modules if isinstance(m, dict) and m.get("path")}
    except (OSError, ValueError, TypeError):
        pass
    files = sorted(
        f
        for folder in folders
        if folder.is_dir()
        for f in folder.iterdir()
        if f.suffix in (".safetensors", ".bin", ".json")
        and f.is_file()
        and f.name != RETRIEVAL_FILE
    )
    return [(str(f.relative_to(path)), f.stat().st_size, f.stat().st_mtime_ns) for f in files]


def suite_fingerprint(
    model: SentenceTransformer,
    name: str,
    data: IRData,
    query_prompt: str | None,
    document_prompt: str | None,
) -> str:
    """What the suite's embeddings depend on: the model (files, own prompts, input length,
    dtype), the prompts passed to it, and the judged queries' and passages' texts."""
    from ragtune.engine.core.models import resolve_model

    query_ids = judged_queries(data)
    return digest(
        [
            FORMAT,
            model_identity(resolve_model(name)),
            dict(getattr(model, "prompts", {}) or {}),
            getattr(model, "max_seq_length", None),
            str(next(model.parameters()).dtype),
            query_prompt,
            document_prompt,
            digest([(q, data.queries[q]) for q in query_ids]),
            digest(sorted(data.corpus.items())),
        ]
    )


def document_prompt_in_use(model: SentenceTransformer, prompt: str | None) -> str:
    """The prompt ``encode_document`` puts before each passage: the one passed, else the
    model's own document prompt (sentence-transformers' order: document, passage, corpus)."""
    if prompt is not None:
        return prompt
    own = getattr(model, "prompts", {}) or {}
    return next((own[k] for k in ("document", "passage", "corpus") if k in own), "")


def corpus_fingerprint(
    model: SentenceTransformer, name: str, corpus: dict[str, str], document_prompt: str | None
) -> str:
    """What a corpus's embeddings alone depend on, so a reader without the suite's queries
    (``ask`` over the workspace's chunks) can find them: model, prompt in use, passages."""
    from ragtune.engine.core.models import resolve_model

    return digest(
        [
            FORMAT,
            model_identity(resolve_model(name)),
            document_prompt_in_use(model, document_prompt),
            getattr(model, "max_seq_length", None),
            str(next(model.parameters()).dtype),
            digest(sorted(corpus.items())),
        ]
    )


def saved_corpus(ws: Workspace, fingerprint: str) -> tuple[list[str], np.ndarray] | None:
    """Corpus ids (sorted) and embeddings of any saved suite whose corpus has this
    fingerprint, else None."""
    folder = ws.root / FOLDER
    for sidecar in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            meta = json.loads(sidecar.read_text(encoding="utf-8"))
            if not isinstance(meta, dict) or meta.get("corpus_fingerprint") != fingerprint:
                continue
            corpus = np.load(sidecar.with_name(sidecar.stem + ".corpus.npy"))
        except (OSError, ValueError, UnicodeDecodeError):
            continue
        ids = meta.get("corpus_ids")
        if isinstance(ids, list) and len(ids) == corpus.shape[0]:
            return [str(i) for i in ids], corpus
    return None


def saved_unit_corpus(
    ws: Workspace, model: SentenceTransformer, name: str, corpus: Mapping[str, str]
) -> np.ndarray | None:
    """This model's unit-length embeddings of ``corpus`` in its own key order, from any set a
    stage saved for these passages (same model files, prompt, length, dtype and texts), for
    a reader that would otherwise encode the corpus again (``ask``, the reranker's
    candidates); None when no such set was saved."""
    from ragtune.engine.core.search import truncate_normalize

    found = saved_corpus(ws, corpus_fingerprint(model, name, dict(corpus), None))
    if found is None:
        return None
    ids, emb = found
    row = {cid: i for i, cid in enumerate(ids)}
    if any(cid not in row for cid in corpus):
        return None
    ordered = emb[[row[cid] for cid in corpus]]
    return np.asarray(truncate_normalize(ordered, ordered.shape[1]), dtype=np.float32)


def save_corpus(
    ws: Workspace,
    label: str,
    model: SentenceTransformer,
    name: str,
    corpus: dict[str, str],
    embeddings: Any,
    document_prompt: str | None,
) -> None:
    """A corpus's embeddings made before evaluate (the train stage encodes every chunk with the
    trained model to fit its rotation), so evaluate and ``ask`` read them instead of encoding
    the corpus again: ``embeddings`` one row per id in sorted-id order, ``name`` the folder the
    model was saved to (its identity is read from the saved files)."""
    ids = sorted(corpus)
    if len(ids) != len(embeddings):
        raise ValueError(f"{len(embeddings)} embeddings for {len(ids)} passages")
    sidecar, _, corpus_path = _paths(ws, "corpus", label)
    meta = {
        "corpus_fingerprint": corpus_fingerprint(model, name, corpus, document_prompt),
        "corpus": len(ids),
        "dim": int(np.shape(embeddings)[1]),
        "corpus_ids": ids,
    }
    write_set(sidecar, {corpus_path: np.asarray(embeddings, dtype=np.float32)}, meta)


def _paths(ws: Workspace, suite: str, label: str) -> tuple[Path, Path, Path]:
    stem = ws.root / FOLDER / f"{suite}-{label}"
    return (
        stem.with_name(stem.name + ".json"),
        stem.with_name(stem.name + ".queries.npy"),
        stem.with_name(stem.name + ".corpus.npy"),
    )


def load_saved(
    ws: Workspace, suite: str, label: str, fingerprint: str, data: IRData
) -> SuiteEmbeddings | None:
    """The saved embeddings when their fingerprint and shapes match, else None."""
    import torch

    sidecar, queries_path, corpus_path = _paths(ws, suite, label)
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or meta.get("fingerprint") != fingerprint:
            return None
        queries = np.load(queries_path)
        corpus = np.load(corpus_path)
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    query_ids, corpus_ids = judged_queries(data), sorted(data.corpus)
    if queries.shape[0] != len(query_ids) or corpus.shape[0] != len(corpus_ids):
        return None
    return SuiteEmbeddings(
        query_ids, corpus_ids, torch.from_numpy(queries), torch.from_numpy(corpus)
    )


def save(
    ws: Workspace,
    suite: str,
    label: str,
    fingerprint: str,
    emb: SuiteEmbeddings,
    corpus_fp: str = "",
) -> None:
    sidecar, queries_path, corpus_path = _paths(ws, suite, label)
    meta = {
        "fingerprint": fingerprint,
        "corpus_fingerprint": corpus_fp,
        "queries": len(emb.query_ids),
        "corpus": len(emb.corpus_ids),
        "dim": int(emb.corpus.shape[1]),
        "corpus_ids": emb.corpus_ids,
    }
    arrays = {
        queries_path: emb.queries.detach().float().cpu().numpy(),
        corpus_path: emb.corpus.detach().float().cpu().numpy(),
    }
    write_set(sidecar, arrays, meta)


def write_set(sidecar: Path, arrays: dict[Path, np.ndarray], meta: dict[str, Any]) -> None:
    """The arrays first, the sidecar last: a set written halfway has no sidecar, so it is
    never read."""
    sidecar.parent.mkdir(parents=True, exist_ok=True)
    sidecar.unlink(missing_ok=True)
    for path, array in arrays.items():
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, array)
        tmp.replace(path)
    tmp = sidecar.with_suffix(".tmp")
    tmp.write_text(json.dumps(meta, indent=2), encoding="utf-8")
    tmp.replace(sidecar)


def saved_or_encoded(
    ws: Workspace,
    suite: str,
    label: str,
    model: SentenceTransformer,
    name: str,
    data: IRData,
    *,
    batch_size: int,
    query_prompt: str | None,
    document_prompt: str | None,
    events: Emitter | None = None,
    corpus: Any = None,
) -> SuiteEmbeddings:
    """The suite's embeddings by ``model`` (loaded from ``name``): read when saved and current,
    else encoded (``corpus``: this model's embeddings of the same corpus, already made) and
    saved. Tensors come back on the model's device."""
    fp = suite_fingerprint(model, name, data, query_prompt, document_prompt)
    found = load_saved(ws, suite, label, fp, data)
    if found is not None:
        if events is not None:
            events.info(
                f"{suite}/{label}: embeddings read from {FOLDER}/ (model and texts unchanged)"
            )
        device = model.device
        return SuiteEmbeddings(
            found.query_ids, found.corpus_ids, found.queries.to(device), found.corpus.to(device)
        )
    corpus_fp = corpus_fingerprint(model, name, data.corpus, document_prompt)
    if corpus is None:
        made = saved_corpus(ws, corpus_fp)
        if made is not None and made[0] == sorted(data.corpus):
            import torch

            corpus = torch.from_numpy(made[1]).to(model.device)
            if events is not None:
                events.info(
                    f"{suite}/{label}: corpus embeddings read from {FOLDER}/ (made by an "
                    "earlier stage with this model and these passages)"
                )
    emb = encode_suite(
        model,
        data,
        batch_size=batch_size,
        query_prompt=query_prompt,
        document_prompt=document_prompt,
        events=events,
        label=f"{suite}/{label}",
        corpus=corpus,
    )
    save(ws, suite, label, fp, emb, corpus_fp)
    return emb
