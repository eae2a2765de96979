"""Where finished models go, and in which formats."""

from __future__ import annotations

from dataclasses import dataclass

from ragtune.engine.config.base import Section, setting
from ragtune.engine.core.errors import ConfigError

FORMATS = ("onnx", "onnx-int8", "openvino")


@dataclass
class ExportConfig(Section):
    push_to_hub: bool = setting(False, help="upload both models to the Hugging Face Hub")
    embedder_repo: str = setting("", help="Hub repo id for the embedder, e.g. me/handbook-embed")
    reranker_repo: str = setting("", help="Hub repo id for the reranker")
    private: bool = setting(True, help="create private repos")
    token_env: str = setting("HF_TOKEN", help="environment variable holding the Hub token")
    formats: list[str] = setting(
        default_factory=list,
        help="deployment formats written to models/embedder-deploy with the rotation and size "
        "baked in: 'onnx' (optimised), 'onnx-int8' (dynamic int8), 'openvino'; each is loaded "
        "back and compared with the torch model (needs pip install 'ragtune[onnx]', "
        "'ragtune[openvino]')",
    )
    dim: int = setting(
        0,
        help="embedding size baked into the deployment formats; 0 = the deploy stage's "
        "suggestion, else the full size",
        minimum=0,
    )
    model: str = setting(
        "tuned",
        help="which embedder the deployment formats hold: the fine-tuned one, or the deploy "
        "stage's interpolation with the base model (deploy.interpolate)",
        choices=("tuned", "interpolated"),
    )

    def check(self) -> None:
        bad = [f for f in self.formats if f not in FORMATS]
        if bad:
            raise ConfigError("export.formats", self.formats, " | ".join(map(repr, FORMATS)))
