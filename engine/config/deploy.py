"""What the deploy stage measures: embedding precisions, exported encoders and base/tuned interpolation."""

from __future__ import annotations

from dataclasses import dataclass

from ragtune.engine.config.base import Section, setting
from ragtune.engine.core.errors import ConfigError

BACKENDS = ("onnx", "onnx-int8")


@dataclass
class DeployConfig(Section):
    table: bool = setting(
        True,
        help="measure nDCG@10 of the fine-tuned model at every Matryoshka size with float32, int8 "
        "and binary embeddings, and the index bytes each costs (one encode of queries and corpus)",
    )
    backends: list[str] = setting(
        default_factory=list,
        help="also measure these exported encoders against torch: 'onnx', 'onnx-int8' "
        "(needs the onnx extra: pip install 'ragtune[onnx]')",
    )
    throughput_texts: int = setting(
        256,
        help="passages each encoder encodes to measure its speed against torch float32",
        minimum=8,
        fingerprint=False,
    )
    interpolate: bool = setting(
        False,
        help="interpolate the fine-tuned weights with the base model's (LM-Cocktail style) and "
        "choose the weight on half the held-out queries; a guard when training did not help",
    )
    interpolation_weights: list[float] = setting(
        default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0],
        help="weights of the fine-tuned model tried (0 = base + rotation, 1 = fine-tuned)",
        minimum=0.0,
        maximum=1.0,
    )

    @property
    def enabled(self) -> bool:
        return self.table or bool(self.backends) or self.interpolate

    def check(self) -> None:
        bad = [b for b in self.backends if b not in BACKENDS]
        if bad:
            raise ConfigError("deploy.backends", self.backends, " | ".join(map(repr, BACKENDS)))
        if self.interpolate and len(self.interpolation_weights) < 2:
            raise ConfigError(
                "deploy.interpolation_weights",
                self.interpolation_weights,
                "at least two weights from 0 to 1, e.g. [0.0, 0.5, 1.0]",
            )
