"""Classification losses for imbalanced emotion classes, and the CCC loss for dimensional targets.

All losses take logits of shape (B, C) and integer targets of shape (B,), and return the mean
over the batch. Class information (counts or weights) is given once at construction, so a loss
object is built from the config and reused every step.

- ``weighted_ce``     ABHINAYA / MSP-Podcast baseline: cross-entropy with per-class weights.
- ``focal``           Lin et al. 2017, weighted focal loss (ABHINAYA S1).
- ``vector_scaling``  Kini et al., NeurIPS 2021, "Label-Imbalanced and Group-Sensitive
                      Classification under Overparameterization" (ABHINAYA, T2/S2).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

LOSS_TYPES = ("ce", "weighted_ce", "focal", "vector_scaling")


def class_weights_from_counts(
    counts: Sequence[int | float], method: str = "inverse", beta: float = 0.999
) -> torch.Tensor:
    r"""Per-class weights from class counts ``n_c``, normalised so that ``sum_c w_c n_c = N``.

    The normalisation keeps the loss on the scale of plain CE when averaged over a training set.

    - ``inverse``:          :math:`w_c \propto 1 / n_c` (equal total weight per class)
    - ``inverse_sqrt``:     :math:`w_c \propto 1 / \sqrt{n_c}` (a softer re-weighting)
    - ``effective_number``: :math:`w_c \propto (1-\beta) / (1-\beta^{n_c})` (Cui et al., CVPR 2019)
    """
    n = torch.as_tensor(counts, dtype=torch.float64)
    if n.ndim != 1 or len(n) < 2:
        raise ValueError(
            f"class counts must be a 1-D sequence with one entry per class (>= 2), got {list(counts)}"
        )
    if (n <= 0).any():
        missing = [i for i, c in enumerate(n.tolist()) if c <= 0]
        raise ValueError(
            f"class counts must be positive, found {n.tolist()} (classes {missing} have no examples); "
            "drop the classes from the label set or pass explicit weights."
        )
    if method == "inverse":
        w = 1.0 / n
    elif method == "inverse_sqrt":
        w = 1.0 / n.sqrt()
    elif method == "effective_number":
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta must be in [0, 1), got {beta}")
        w = (1.0 - beta) / (1.0 - torch.pow(torch.tensor(beta, dtype=torch.float64), n))
    else:
        raise ValueError(
            f"unknown class-weight method {method!r}; expected 'inverse', 'inverse_sqrt' or 'effective_number'"
        )
    w = w * n.sum() / (w * n).sum()
    return w.float()


class WeightedCrossEntropyLoss(nn.Module):
    r"""Cross-entropy with class weights: :math:`\ell = -\sum_i w_{y_i} \log p_{i,y_i} / \sum_i w_{y_i}`.

    With ``weight=None`` it is plain cross-entropy. The weighted mean (PyTorch's convention)
    keeps the loss scale independent of the batch's class mix.
    """

    def __init__(self, weight: torch.Tensor | None = None, label_smoothing: float = 0.0):
        super().__init__()
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float))
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        weight = None if self.weight is None else self.weight.to(logits.dtype)
        return F.cross_entropy(logits, targets, weight=weight, label_smoothing=self.label_smoothing)


class FocalLoss(nn.Module):
    r"""Weighted focal loss (Lin et al., ICCV 2017, eq. 5):

    .. math:: \ell_i = -w_{y_i} (1 - p_{i,y_i})^{\gamma} \log p_{i,y_i}

    averaged with the same weighted mean as :class:`WeightedCrossEntropyLoss`. ``gamma=0`` and no
    weights give cross-entropy; ``gamma>0`` down-weights examples that are already well classified.
    """

    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None):
        super().__init__()
        if gamma < 0:
            raise ValueError(f"focal gamma must be >= 0, got {gamma}")
        self.gamma = gamma
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float))

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits.float(), dim=-1).gather(-1, targets[:, None]).squeeze(-1)  # B
        loss = -((1.0 - log_p.exp()).clamp_min(0.0) ** self.gamma) * log_p
        if self.weight is None:
            return loss.mean()
        w = self.weight[targets]
        return (w * loss).sum() / w.sum()


class VectorScalingLoss(nn.Module):
    r"""Vector-scaling (VS) loss (Kini et al., NeurIPS 2021, eq. 5):

    .. math:: \ell = -w_y \log \frac{\exp(\Delta_y z_y + \iota_y)}{\sum_c \exp(\Delta_c z_c + \iota_c)},
              \quad \Delta_c = (n_c / n_{\max})^{\gamma}, \quad \iota_c = \tau \log \pi_c

    The multiplicative term :math:`\Delta` enlarges the margin of rare classes (their logits are
    scaled down during training, so they must be pushed further); the additive term :math:`\iota`
    is logit adjustment by the class prior :math:`\pi_c = n_c / N`. ``gamma=0, tau=0`` and no
    weights give cross-entropy. At inference the raw logits are used (no adjustment).
    """

    def __init__(
        self,
        class_counts: Sequence[int | float],
        gamma: float = 0.2,
        tau: float = 1.0,
        weight: torch.Tensor | None = None,
    ):
        super().__init__()
        n = torch.as_tensor(class_counts, dtype=torch.float)
        if (n <= 0).any():
            raise ValueError(f"vector-scaling loss needs positive class counts, got {n.tolist()}")
        self.register_buffer("delta", (n / n.max()) ** gamma)
        self.register_buffer("iota", tau * torch.log(n / n.sum()))
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float))

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        adjusted = logits.float() * self.delta + self.iota  # B, C
        return F.cross_entropy(adjusted, targets, weight=self.weight)


def build_classification_loss(
    loss_type: str,
    class_counts: Sequence[int | float] | None = None,
    *,
    focal_gamma: float = 2.0,
    vs_gamma: float = 0.2,
    vs_tau: float = 1.0,
    class_weighting: str = "inverse",
) -> nn.Module:
    """The loss named ``loss_type`` (one of ``LOSS_TYPES``), weighted from ``class_counts``.

    ``focal`` is weighted when counts are given (ABHINAYA's "weighted focal"); ``vector_scaling``
    needs counts for its Δ and ι terms and is left unweighted.
    """
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"unknown loss_type {loss_type!r}; expected one of {LOSS_TYPES}")
    needs_counts = loss_type in ("weighted_ce", "vector_scaling")
    if needs_counts and class_counts is None:
        raise ValueError(
            f"loss_type={loss_type!r} needs the training-set class counts; set `class_counts` in the config "
            "(recipes fill it from the training split)."
        )
    if loss_type == "ce":  # unweighted: the counts are not used, so a class absent from training is fine
        return WeightedCrossEntropyLoss()
    weight = class_weights_from_counts(class_counts, class_weighting) if class_counts is not None else None
    if loss_type == "weighted_ce":
        return WeightedCrossEntropyLoss(weight)
    if loss_type == "focal":
        return FocalLoss(focal_gamma, weight)
    return VectorScalingLoss(class_counts, gamma=vs_gamma, tau=vs_tau)


def concordance_correlation_coefficient(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    r"""Lin's CCC per column: :math:`2 \sigma_{xy} / (\sigma_x^2 + \sigma_y^2 + (\mu_x - \mu_y)^2)`.

    ``predictions``/``targets``: (B,) or (B, D); returns a scalar or (D,). Population (biased)
    moments, as in the MSP-Podcast challenge scorer.
    """
    x, y = predictions.float(), targets.float()
    mx, my = x.mean(0), y.mean(0)
    vx, vy = x.var(0, unbiased=False), y.var(0, unbiased=False)
    cov = ((x - mx) * (y - my)).mean(0)
    return 2.0 * cov / (vx + vy + (mx - my) ** 2 + 1e-8)


class CCCLoss(nn.Module):
    """``1 - CCC`` averaged over the dimensions (arousal, valence, dominance); NaN targets are ignored."""

    def forward(self, predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if predictions.ndim == 1:
            predictions, targets = predictions[:, None], targets[:, None]
        losses = []
        for d in range(predictions.shape[-1]):
            keep = ~torch.isnan(targets[:, d])
            if keep.sum() < 2:  # CCC is undefined on fewer than two values
                continue
            losses.append(1.0 - concordance_correlation_coefficient(predictions[keep, d], targets[keep, d]))
        if not losses:
            return predictions.sum() * 0.0
        return torch.stack(losses).mean()


__all__ = [
    "LOSS_TYPES",
    "CCCLoss",
    "FocalLoss",
    "VectorScalingLoss",
    "WeightedCrossEntropyLoss",
    "build_classification_loss",
    "class_weights_from_counts",
    "concordance_correlation_coefficient",
]
