"""A tiny workspace of made-up facts (chunks, generated rows, prepared splits) for reranker tests."""

from __future__ import annotations

from pathlib import Path

from ragtune.engine.config import RunConfig
from ragtune.engine.config.data import DataConfig
from ragtune.engine.core.events import Emitter
from ragtune.engine.core.records import Chunk, chunk_id_for, write_chunks
from ragtune.engine.core.workspace import Workspace
from ragtune.engine.data.prepare import run_prepare
from ragtune.engine.generate.rows import CallRecord, GeneratedRow, RecordWriter

CREATURES = [
    "glimmerfox",
    "tarnwhale",
    "pebblecrow",
    "mossback toad",
    "sunreed heron",
    "ashwing moth",
    "driftseal",
    "cobalt newt",
    "emberhare",
    "frostling vole",
    "quillboar",
    "lanternfish",
    "saltmarsh lynx",
    "thornbeetle",
    "velvet gecko",
    "cinder ibis",
    "brineworm",
    "dusk otter",
    "ironshell crab",
    "marble finch",
]
PLACES = [
    "Kelvarra Hills",
    "Osterby Fen",
    "the Brask Plateau",
    "Lake Meridun",
    "the Vey Archipelago",
    "Hollin Vale",
    "the Caddow Marshes",
    "Mount Ferrow",
    "the Istrel Coast",
    "Pellam Forest",
]
FOODS = [
    "amber lichen",
    "bluefruit",
    "salt kelp",
    "river snails",
    "pine nectar",
    "glass shrimp",
    "sorrel roots",
    "cave crickets",
    "dune seeds",
    "copper moss",
]
PEOPLE = [
    "Ilse Varn",
    "Tomas Qell",
    "Ada Brightwater",
    "Oren Maddox",
    "Suri Lantana",
    "Hal Dunmore",
]


def fact_chunks(n: int = 60) -> list[tuple[Chunk, list[str]]]:
    """``n`` chunks, each about one creature and one aspect, with the queries it answers."""
    out: list[tuple[Chunk, list[str]]] = []
    aspects = ("habitat", "diet", "discovery")
    for i in range(n):
        creature = CREATURES[i % len(CREATURES)]
        aspect = aspects[(i // len(CREATURES)) % len(aspects)]
        place, food = PLACES[i % len(PLACES)], FOODS[(i * 3) % len(FOODS)]
        person, year = PEOPLE[i % len(PEOPLE)], 1800 + 7 * i
        if aspect == "habitat":
            text = (
                f"The {creature} lives only in {place}. It shelters under stones during the day "
                f"and comes out after rain. Local guides count about {40 + i} of them each spring."
            )
            queries = [f"Where does the {creature} live?", f"{creature} habitat {place}"]
        elif aspect == "diet":
            text = (
                f"The diet of the {creature} is mostly {food}. In lean winters it also eats "
                f"bark, and a single animal can store {i + 3} grams of food in its cheeks."
            )
            queries = [f"What does the {creature} eat?", f"{creature} food {food}"]
        else:
            text = (
                f"The {creature} was first described by {person} in {year}. The original "
                f"specimen is kept in the museum of {place} under catalogue number {1000 + i}."
            )
            queries = [f"Who first described the {creature}?", f"{creature} discovered {year}"]
        chunk = Chunk(
            chunk_id=chunk_id_for(f"doc{i}.md", text),
            doc_id=f"doc{i}",
            text=text,
            source=f"doc{i}.md",
            title=creature.title(),
            heading=aspect.title(),
            page=None,
            n_tokens=len(text.split()),
        )
        out.append((chunk, queries))
    return out


def build_workspace(root: Path, *, n: int = 60, llm_negatives: bool = True) -> Workspace:
    """Chunks, a generated.jsonl (with LLM-style negatives on some rows) and prepared splits."""
    ws = Workspace.create(root)
    items = fact_chunks(n)
    chunks = [c for c, _ in items]
    write_chunks(ws.chunks_path, chunks)
    rows: list[GeneratedRow] = []
    with RecordWriter(ws.generated_path) as writer:
        for i, (chunk, queries) in enumerate(items):
            chunk_rows = []
            for q in queries:
                row = GeneratedRow(chunk_id=chunk.chunk_id, question=q, context=chunk.text)
                if llm_negatives and i % 4 == 0:
                    other = items[(i + 1) % n][0]
                    row.negative_reranking = other.text
                    row.negative_retrieval = f"How long does the {CREATURES[(i + 5) % 20]} sleep?"
                chunk_rows.append(row)
            writer.write(CallRecord(key=f"k{i}", chunk_id=chunk.chunk_id, rows=chunk_rows))
            rows.extend(chunk_rows)
    run_prepare(DataConfig(eval_fraction=0.25, seed=1), ws, rows, chunks, Emitter())
    return ws


def tiny_config(ws: Workspace, embedder: Path, reranker: Path, **reranker_kw: object) -> RunConfig:
    cfg = RunConfig.from_dict(
        {
            "run": {"workspace": str(ws.root)},
            "embedder": {"base_model": str(embedder)},
            "reranker": {
                "base_model": str(reranker),
                "batch_size": 16,
                "max_length": 64,
                "num_negatives": 3,
                "range_min": 0,
                "range_max": 10,
                "top_k": 10,
                "device": "cpu",
                "learning_rate": 5e-5,
                # the tiny encoders have fresh heads; these tests train them on purpose
                "min_queries_fresh_head": 0,
                **reranker_kw,
            },
        }
    )
    cfg.save(ws.config_path)
    return cfg


def one_torch_thread():
    """Two threads on two shared cores spin against the other engineers' jobs (a tiny step
    goes from ~20 ms to over a second); one thread keeps these tests fast and steady."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
