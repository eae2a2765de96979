"""Embedder losses by ``embedder.loss`` name (``LOSSES``), and Matryoshka self-distillation.

Self-distillation learns the domain without forgetting what the base model knew.
Contrastive loss on a few thousand pseudo-queries pulls a strong general model away
from its well-calibrated similarity structure (it lost nDCG@10 on real queries in our
runs). Adding, at every Matryoshka size, a KL term towards the frozen base model's
full-size in-batch similarity distribution keeps that structure as the anchor and
teaches the short prefixes to reproduce it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from ragtune.engine.config.training import EmbedderConfig


class MatryoshkaDistillLoss(nn.Module):
    """``last_candidates`` is how many in-batch candidates each query was scored against in
    the latest step (batch x world size when gathering); ``seen_candidates`` keeps it for the
    process, so a training worker can report it without holding the loss object.

    With ``listwise_weight`` above 0 (the hybrid teacher, ``ragtune.engine.embedder.hybrid_teacher``)
    the columns after the positive are each query's own candidates, not in-batch ones: the
    student's distribution over (positive, candidates) is pulled at every size towards the
    teacher's logits, which the rows carry in the last row of their label.
    """

    seen_candidates: ClassVar[int | None] = None

    def __init__(
        self,
        model: Any,
        teacher: Any | None,
        dims: Sequence[int],
        *,
        weights: Sequence[float] | None = None,
        distill_weight: float = 1.0,
        contrastive_weight: float = 1.0,
        listwise_weight: float = 0.0,
        scale: float = 20.0,
        gather_across_devices: bool = False,
    ) -> None:
        super().__init__()
        self.model = model
        # None when the rows carry the teacher's embeddings (engine.embedder.teacher); a model
        # here runs on every batch instead, as before precomputing existed.
        self.teacher = teacher
        if teacher is not None:
            for p in teacher.parameters():
                p.requires_grad_(False)
            self.teacher.eval()
        self.dims = list(dims)
        self.weights = list(weights) if weights else [1.0] * len(self.dims)
        self.distill_weight = distill_weight
        self.contrastive_weight = contrastive_weight
        self.listwise_weight = listwise_weight
        self.scale = scale
        self.gather_across_devices = gather_across_devices

    def teacher_embeddings(
        self, features: list[dict[str, torch.Tensor]], labels: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Unit-length teacher embeddings of the anchors and of the in-batch candidates
        (column after column, as the student's are concatenated), and with a listwise term
        the teacher's logits over each query's (positive, candidates)."""
        if labels is not None and labels.dim() == 3:
            device = next(iter(features[0].values())).device
            labels = labels.to(device=device, dtype=torch.float32)
            if self.listwise_weight:
                listed = labels[:, 2, : len(features) - 1]
                return F.normalize(labels[:, 0], dim=-1), F.normalize(labels[:, 1], dim=-1), listed
            t_anchor = labels[:, 0]
            t_cand = labels[:, 1:].transpose(0, 1).reshape(-1, labels.size(-1))
            return F.normalize(t_anchor, dim=-1), F.normalize(t_cand, dim=-1), None
        if self.teacher is None or self.listwise_weight:
            raise ValueError(
                "the distill loss needs the teacher's embeddings as the rows' label column "
                "(engine.embedder.teacher.precompute_teacher) or a teacher model"
            )
        with torch.no_grad():
            t_anchor = self.teacher(features[0])["sentence_embedding"]
            t_cand = torch.cat([self.teacher(f)["sentence_embedding"] for f in features[1:]])
        return F.normalize(t_anchor, dim=-1), F.normalize(t_cand, dim=-1), None

    def forward(
        self,
        sentence_features: Iterable[dict[str, torch.Tensor]],
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        features = list(sentence_features)
        anchors = self.model(features[0])["sentence_embedding"]
        in_batch = features[1:2] if self.listwise_weight else features[1:]
        candidates = torch.cat([self.model(f)["sentence_embedding"] for f in in_batch])
        positives = candidates[: anchors.size(0)]
        listed = None
        if self.listwise_weight:
            listed = torch.stack([self.model(f)["sentence_embedding"] for f in features[2:]], 1)
        t_anchor, t_cand, t_listed = self.teacher_embeddings(features, labels)
        offset = 0
        if self.gather_across_devices and _distributed():
            # Every rank's candidates join each query's in-batch set, as MNRL does with
            # gather_across_devices; the teacher's side needs no gradient.
            from sentence_transformers.util import all_gather, all_gather_with_grad

            offset = torch.distributed.get_rank() * candidates.size(0)
            candidates = all_gather_with_grad(candidates)
            t_cand = all_gather(t_cand)
        self.last_candidates = candidates.size(0)
        MatryoshkaDistillLoss.seen_candidates = self.last_candidates
        with torch.no_grad():
            target = F.log_softmax(t_anchor @ t_cand.T * self.scale, dim=1)
            if t_listed is not None:
                t_listed = F.log_softmax(t_listed, dim=1)
        labels_ = torch.arange(offset, offset + anchors.size(0), device=anchors.device)
        loss = anchors.new_zeros(())
        for dim, weight in zip(self.dims, self.weights, strict=True):
            a = F.normalize(anchors[:, :dim], dim=-1)
            c = F.normalize(candidates[:, :dim], dim=-1)
            logits = a @ c.T * self.scale
            if self.distill_weight:
                kl = F.kl_div(
                    F.log_softmax(logits, dim=1), target, log_target=True, reduction="batchmean"
                )
                loss = loss + weight * self.distill_weight * kl
            if self.contrastive_weight:
                loss = loss + weight * self.contrastive_weight * F.cross_entropy(logits, labels_)
            if listed is not None and t_listed is not None:
                p = F.normalize(positives[:, :dim], dim=-1)
                lst = F.normalize(listed[..., :dim], dim=-1)
                scores = torch.cat(
                    [(a * p).sum(-1, keepdim=True), torch.einsum("bd,bkd->bk", a, lst)], dim=1
                )
                kl = F.kl_div(
                    F.log_softmax(scores * self.scale, dim=1),
                    t_listed,
                    log_target=True,
                    reduction="batchmean",
                )
                loss = loss + weight * self.listwise_weight * kl
        return loss

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "dims": self.dims,
            "weights": self.weights,
            "distill_weight": self.distill_weight,
            "contrastive_weight": self.contrastive_weight,
            "listwise_weight": self.listwise_weight,
            "scale": self.scale,
        }


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


class MatryoshkaMarginMSELoss(nn.Module):
    """GPL's MarginMSE at every Matryoshka size: the embedder's margin between a query's
    positive and its mined negative is regressed onto a trained cross-encoder's margin.

    The cross-encoder sees query and passage together, so its margins carry what an
    in-batch softmax over pseudo-queries cannot: how much better the positive is, and
    that a mined "negative" which answers the query is no negative at all (a margin near
    or below zero). The embedder's cosines are multiplied by ``scale`` to be in logit
    units; ``contrastive_weight`` adds the in-batch softmax over positives and negatives.
    """

    def __init__(
        self,
        model: Any,
        dims: Sequence[int],
        *,
        scale: float = 20.0,
        contrastive_weight: float = 0.0,
        weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.dims = list(dims)
        self.weights = list(weights) if weights else [1.0] * len(self.dims)
        self.scale = scale
        self.contrastive_weight = contrastive_weight

    def forward(
        self, sentence_features: Iterable[dict[str, torch.Tensor]], labels: torch.Tensor
    ) -> torch.Tensor:
        query, positive, negative = (self.model(f)["sentence_embedding"] for f in sentence_features)
        target = labels.to(query.dtype)
        loss = query.new_zeros(())
        for dim, weight in zip(self.dims, self.weights, strict=True):
            q = F.normalize(query[:, :dim], dim=-1)
            p = F.normalize(positive[:, :dim], dim=-1)
            n = F.normalize(negative[:, :dim], dim=-1)
            margin = ((q * p).sum(-1) - (q * n).sum(-1)) * self.scale
            loss = loss + weight * F.mse_loss(margin, target)
            if self.contrastive_weight:
                logits = q @ torch.cat([p, n]).T * self.scale
                labels_ = torch.arange(q.size(0), device=q.device)
                loss = loss + weight * self.contrastive_weight * F.cross_entropy(logits, labels_)
        return loss

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "dims": self.dims,
            "weights": self.weights,
            "scale": self.scale,
            "contrastive_weight": self.contrastive_weight,
        }


# -- the registry: one builder per ``embedder.loss`` choice (``ragtune.engine.config.training.LOSSES``)

LossBuilder = Callable[[Any, "EmbedderConfig", list[int], bool], nn.Module]
LOSSES: dict[str, LossBuilder] = {}


def register(name: str) -> Callable[[LossBuilder], LossBuilder]:
    """``@register("name")`` on ``build(model, cfg, dims, distributed)``: the loss the trainer
    gets for ``embedder.loss = "name"``; ``distributed`` asks it to gather across devices."""

    def add(build: LossBuilder) -> LossBuilder:
        LOSSES[name] = build
        return build

    return add


def _matryoshka(model: Any, inner: nn.Module, dims: list[int]) -> nn.Module:
    from sentence_transformers.sentence_transformer.losses import MatryoshkaLoss

    return MatryoshkaLoss(model, inner, matryoshka_dims=dims)


@register("mnrl")
def _mnrl(model: Any, cfg: EmbedderConfig, dims: list[int], distributed: bool) -> nn.Module:
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    return _matryoshka(
        model, MultipleNegativesRankingLoss(model, gather_across_devices=distributed), dims
    )


@register("cached_mnrl")
def _cached_mnrl(model: Any, cfg: EmbedderConfig, dims: list[int], distributed: bool) -> nn.Module:
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
    )

    inner = CachedMultipleNegativesRankingLoss(
        model, mini_batch_size=cfg.mini_batch_size, gather_across_devices=distributed
    )
    return _matryoshka(model, inner, dims)


@register("gist")
def _gist(model: Any, cfg: EmbedderConfig, dims: list[int], distributed: bool) -> nn.Module:
    from sentence_transformers.sentence_transformer.losses import GISTEmbedLoss

    from ragtune.engine.core.models import load_embedder

    guide = load_embedder(
        cfg.base_model, device=str(model.device), trust_remote_code=cfg.trust_remote_code
    )
    inner = GISTEmbedLoss(model, guide=guide, gather_across_devices=distributed)
    return _matryoshka(model, inner, dims)


@register("distill")
def _distill(model: Any, cfg: EmbedderConfig, dims: list[int], distributed: bool) -> nn.Module:
    # The base model's embeddings arrive with each batch (``with_teacher_embeddings``).
    return MatryoshkaDistillLoss(model, None, dims, gather_across_devices=distributed)


@register("hybrid_distill")
def _hybrid_distill(
    model: Any, cfg: EmbedderConfig, dims: list[int], distributed: bool
) -> nn.Module:
    # Teacher embeddings and fused logits arrive with each batch (``hybrid_teacher_rows``).
    return MatryoshkaDistillLoss(
        model,
        None,
        dims,
        listwise_weight=cfg.listwise_weight,
        gather_across_devices=distributed,
    )


@register("gpl")
def _gpl(model: Any, cfg: EmbedderConfig, dims: list[int], distributed: bool) -> nn.Module:
    return MatryoshkaMarginMSELoss(
        model, dims, scale=cfg.gpl_score_scale, contrastive_weight=cfg.gpl_contrastive_weight
    )
