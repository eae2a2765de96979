"""ONNX, int8 ONNX and OpenVINO files of an embedder, with its rotation and Matryoshka size baked in.

sentence-transformers' own exporters (``export_optimized_onnx_model``,
``export_dynamic_quantized_onnx_model``, ``backend="onnx"``) go through optimum-onnx, whose
newest release (0.1.0) requires transformers<4.58 while sentence-transformers 6 requires
transformers>=5: ``pip install sentence-transformers[onnx]`` does not resolve. So the graph is
exported here with ``torch.onnx`` and optimised and quantised with onnxruntime's own optimizer
and dynamic quantizer (the tools optimum's ORTOptimizer and ORTQuantizer call). The graph holds
the whole sentence-transformers pipeline (encoder, pooling, rotation, truncation, normalise),
so any onnxruntime binding gets the evaluated vectors from token ids; in Python the folder
loads as a ``SentenceTransformer`` whose forward runs in onnxruntime (``load_exported``).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragtune.engine.core.errors import InputError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

ONNX_FILE = "onnx/embedding.onnx"
ONNX_INT8_FILE = "onnx/embedding_qint8.onnx"
OPENVINO_FILE = "openvino/embedding.xml"
FILES = {"onnx": ONNX_FILE, "onnx-int8": ONNX_INT8_FILE, "openvino": OPENVINO_FILE}
OUTPUT = "sentence_embedding"
# The optimizer's fusions are written for these encoder families; others get onnxruntime's
# generic graph optimisations only.
_FUSABLE = {"bert", "roberta", "distilbert", "xlm-roberta", "mpnet", "electra", "camembert"}


class MissingExtra(InputError):
    """An optional dependency of an export format is not installed; names the extra to install."""

    def __init__(self, what: str, extra: str, packages: str) -> None:
        super().__init__(
            f"{what} needs {packages}, which is not installed",
            where="export.formats",
            hint=f"pip install 'ragtune[{extra}]'",
        )


def require(fmt: str) -> None:
    """Fail before any work when a format's packages are missing."""
    if fmt in ("onnx", "onnx-int8"):
        missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
        if missing:
            raise MissingExtra(f"the {fmt} format", "onnx", " and ".join(missing))
    elif fmt == "openvino":
        for module in ("onnx", "openvino"):
            if importlib.util.find_spec(module) is None:
                raise MissingExtra("the openvino format", "openvino", module)


@dataclass(frozen=True)
class ExportCheck:
    """One written format, and how far its vectors are from the torch model's on sample texts."""

    format: str
    path: str
    bytes: int
    dim: int
    max_abs_diff: float
    min_cosine: float
    texts: int


def bake(model: SentenceTransformer, dim: int) -> SentenceTransformer:
    """The model ending in the evaluated vectors: first ``dim`` coordinates, unit length.

    A trailing bias-free linear layer (the corpus rotation) keeps only its first ``dim`` rows;
    otherwise a coordinate-selecting layer is added. Evaluation truncates and renormalises,
    so the normalise step comes last either way.
    """
    import torch
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize

    full = _dim(model)
    if not 0 < dim <= full:
        raise InputError(
            f"cannot bake size {dim} into a {full}-dim model",
            where="export.dim",
            hint=f"a size from 1 to {full}, or 0 for the deploy stage's suggestion",
        )
    import copy

    modules = copy.deepcopy(list(model))
    last = modules[-1]
    rotation = (
        isinstance(last, Dense)
        and getattr(last.linear, "bias", None) is None
        and isinstance(last.activation_function, torch.nn.Identity)
    )
    if dim < full:
        weight = last.linear.weight.detach()[:dim] if rotation else torch.eye(full)[:dim]
        head = Dense(
            weight.shape[1],
            dim,
            bias=False,
            activation_function=torch.nn.Identity(),
            init_weight=weight.clone(),
        )
        modules = [*modules[:-1], head] if rotation else [*modules, head]
    from sentence_transformers import SentenceTransformer

    baked = SentenceTransformer(modules=[*modules, Normalize()], device="cpu")
    baked.prompts = dict(model.prompts)
    baked.default_prompt_name = model.default_prompt_name
    return baked


def _dim(model: SentenceTransformer) -> int:
    getter = getattr(model, "get_embedding_dimension", None)
    return int(getter() if getter else model.get_sentence_embedding_dimension())


def _graph(model: SentenceTransformer, names: list[str]) -> Any:
    """The pipeline from token tensors to ``sentence_embedding``, as torch.onnx traces it."""
    import torch

    class Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.model(dict(zip(names, tensors, strict=True)))[OUTPUT]

    return Graph().eval()


def export_graph(model: SentenceTransformer, path: Path, sample: list[str]) -> list[str]:
    """fp32 ONNX with dynamic batch and sequence axes; returns the input names."""
    import warnings

    import torch

    features = model.preprocess(sample[:4] or ["sample text"])
    names = [k for k, v in features.items() if isinstance(v, torch.Tensor)]
    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _graph(model, names),
            tuple(features[n] for n in names),
            str(path),
            input_names=names,
            output_names=[OUTPUT],
            dynamic_axes={**axes, OUTPUT: {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    return names


def optimise(src: Path, dst: Path, model_type: str) -> None:
    """onnxruntime's transformer fusions where they exist for the family, else its generic
    extended optimisations, saved so that loading does not redo them."""
    if model_type in _FUSABLE:
        from onnxruntime.transformers.optimizer import optimize_model

        optimized = optimize_model(
            str(src), model_type="bert", num_heads=0, hidden_size=0, opt_level=2, use_gpu=False
        )
        optimized.save_model_to_file(str(dst))
        return
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(dst)
    ort.InferenceSession(str(src), options, providers=["CPUExecutionProvider"])


def quantise(src: Path, dst: Path) -> None:
    """Dynamic int8 weights (activations quantised per batch at run time): no calibration set.

    Per channel: one scale for all of a weight matrix put MiniLM 0.906 cosine from torch on
    medline passages at worst, one scale per output column 0.991."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    # it logs "consider pre-processing" on the root logger at every call: advice for its
    # static (calibrated) mode, printed into the run's output
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True)
    finally:
        root.setLevel(level)


def to_openvino(src: Path, dst: Path) -> None:
    import openvino as ov

    dst.parent.mkdir(parents=True, exist_ok=True)
    # save_model halves weights to fp16 by default; the evaluated vectors need fp32.
    ov.save_model(ov.convert_model(str(src)), str(dst), compress_to_fp16=False)


def load_exported(folder: str | Path, fmt: str = "onnx") -> SentenceTransformer:
    """The exported folder as a SentenceTransformer whose forward runs the exported graph.

    Tokenising, prompts, batching and length sorting stay sentence-transformers' own, so the
    exported file is checked (and timed) on exactly the path a Python user calls.
    """
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    require(fmt)
    folder = Path(folder)
    path = folder / FILES[fmt]
    if not path.is_file():
        raise InputError(
            f"no {fmt} file in the export",
            where=str(path),
            hint=f"export it: ragtune export WORKSPACE --format {fmt}",
        )
    model = SentenceTransformer(str(folder), device="cpu")
    run = _runner(path, fmt)

    def forward(features: dict[str, Any], **_: Any) -> dict[str, Any]:
        feed = {
            name: np.ascontiguousarray(features[name].cpu().numpy(), dtype=np.int64)
            for name in run.inputs
        }
        out = torch.from_numpy(np.asarray(run(feed), dtype=np.float32))
        return {**features, OUTPUT: out}

    model.forward = forward  # type: ignore[method-assign]
    return model


class _runner:
    """One call per batch: onnxruntime session or compiled OpenVINO model."""

    def __init__(self, path: Path, fmt: str) -> None:
        if fmt == "openvino":
            import openvino as ov

            # OpenVINO may run in bf16 on CPUs that have it; f32 gives the evaluated vectors.
            compiled = ov.Core().compile_model(
                str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
            )
            self.inputs = [port.get_any_name() for port in compiled.inputs]
            self._call = lambda feed: compiled(feed)[compiled.output(0)]
        else:
            import onnxruntime as ort
            import torch

            # torch's thread count (OMP_NUM_THREADS, else the cores): the speed column
            # compares like with like, and a busy machine is not oversubscribed
            options = ort.SessionOptions()
            options.intra_op_num_threads = max(1, torch.get_num_threads())
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            self.inputs = [i.name for i in session.get_inputs()]
            self._call = lambda feed: session.run([OUTPUT], feed)[0]

    def __call__(self, feed: dict[str, Any]) -> Any:
        return self._call(feed)


def compare(reference: Any, exported: Any) -> tuple[float, float]:
    """(max absolute difference, smallest cosine) of two row-aligned embedding matrices."""
    import numpy as np

    a = np.asarray(reference, dtype=np.float64)
    b = np.asarray(exported, dtype=np.float64)
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return float(np.abs(a - b).max()), float(cos.min())


def export_formats(
    model: SentenceTransformer,
    out: Path,
    formats: list[str],
    *,
    dim: int,
    sample: list[str],
    document_prompt: str | None = None,
) -> list[ExportCheck]:
    """Write ``out`` (a sentence-transformers folder with ``dim`` baked in) and each format
    under it, then load each back and compare its vectors with the baked torch model's."""
    import shutil
    import tempfile

    for fmt in formats:
        require(fmt)
    baked = bake(model, dim)
    if out.exists():
        shutil.rmtree(out)
    baked.save(str(out))
    texts = sample or ["sample text"]
    reference = baked.encode(texts, prompt=document_prompt, convert_to_numpy=True)
    config = getattr(getattr(baked, "transformers_model", None), "config", None)
    family = getattr(config, "model_type", "")
    checks: list[ExportCheck] = []
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        export_graph(baked, raw, texts)
        for fmt in formats:
            path = out / FILES[fmt]
            path.parent.mkdir(parents=True, exist_ok=True)
            if fmt == "onnx":
                optimise(raw, path, family)
            elif fmt == "onnx-int8":
                quantise(raw, path)
            else:
                to_openvino(raw, path)
            loaded = load_exported(out, fmt)
            got = loaded.encode(texts, prompt=document_prompt, convert_to_numpy=True)
            diff, cosine = compare(reference, got)
            size = sum(p.stat().st_size for p in path.parent.glob(path.stem + ".*"))
            checks.append(ExportCheck(fmt, str(path), size, dim, diff, cosine, len(texts)))
    return checks
